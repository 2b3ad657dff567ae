"""Downloading one file from the Hugging Face Hub with every Hub failure turned into a `ModelError` that
says what to do (gated without a token, gated without access, private or missing repo, bad revision,
missing file, offline). Every model-side download goes through `hub_download`.

    path = hub_download("prov-gigapath/prov-gigapath", "slide_encoder.pth",
                        hint="or download slide_encoder.pth elsewhere and pass checkpoint=PATH")
"""

from __future__ import annotations

import os

from modeling.errors import ModelError


def hub_download(repo_id: str, filename: str, revision: str | None = None, repo_type: str = "model",
                 hint: str | None = None) -> str:
    """`hf_hub_download` (cached); `hint` (another way to get the file) ends every error message.

    HF_ENDPOINT is read at call time, so a changed endpoint (a mirror, a test stand-in) is honoured."""
    from huggingface_hub import get_token, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    tail = f"; {hint}" if hint else ""
    url = f"https://huggingface.co/{'datasets/' if repo_type == 'dataset' else ''}{repo_id}"
    try:
        return hf_hub_download(repo_id, filename, revision=revision, repo_type=repo_type,
                               endpoint=os.environ.get("HF_ENDPOINT") or None)
    except GatedRepoError as exc:
        if get_token() is None:
            raise ModelError(f"{repo_id} is a gated Hub repo and no Hugging Face token is set: accept its terms at "
                             f"{url}, then set HF_TOKEN (or run `hf auth login`){tail}.") from exc
        raise ModelError(f"the Hugging Face token in use has no access to the gated repo {repo_id}: request access "
                         f"at {url} with that account (or use another HF_TOKEN){tail}.") from exc
    except RepositoryNotFoundError as exc:
        raise ModelError(f"{repo_id}: no such Hub repository, or it is private (set HF_TOKEN if you have "
                         f"access){tail}.") from exc
    except RevisionNotFoundError as exc:
        raise ModelError(f"{repo_id}: revision {revision!r} does not exist; pass an existing branch, tag or "
                         f"commit{tail}.") from exc
    except LocalEntryNotFoundError as exc:
        raise ModelError(f"{repo_id}/{filename}: not in the local cache and the Hub is unreachable (offline?). "
                         f"Download it once while online{tail}.") from exc
    except EntryNotFoundError as exc:
        raise ModelError(f"{repo_id}: has no file {filename!r} at revision {revision or 'main'}{tail}.") from exc
    except (HfHubHTTPError, OSError) as exc:
        raise ModelError(f"{repo_id}/{filename}: the download failed ({exc}){tail}.") from exc
