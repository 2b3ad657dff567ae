"""Everything about the Hugging Face Hub in one place: what counts as a Hub id, one download of a file or of
a repository's files, one mapping of every Hub failure to a message that says what to do, and the
reachability probe that lets an offline machine fail in seconds instead of retrying for a minute.

Every package raises its own exception type; pass it as `error=` and the Hub's failures arrive as that
type, chained to the original (`HubError` when none is given):

    path = hub_download("prov-gigapath/prov-gigapath", "slide_encoder.pth", error=ModelError,
                        hint="or download slide_encoder.pth elsewhere and pass checkpoint=PATH")
    folder = hub_snapshot("Lucas-yuc/WSI-Bench", repo_type="dataset", allow_patterns=["*.json"], error=BenchError)
    with hub_errors("uploading out/ to org/name", error=TrainingError, write=True):
        HfApi().upload_folder(...)
    settle_hub_access(["Lucas-yuc/WSI-LLaVA-7b"])     # offline machine: Hub access off, at once

HF_ENDPOINT is read at call time, so a changed endpoint (a mirror, a test stand-in) is honoured.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

log = logging.getLogger("wsi_llava.hub")

HUB_PROBE_TIMEOUT_S = 3.0


class HubError(Exception):
    """A Hub download or upload that failed; the message says why and what to do."""


def looks_like_hub_id(source: str | Path | None) -> bool:
    """`owner/name` that is not a local path: two non-empty parts, no leading `.`, `/` or `~`, no dot in the
    owner (Hub user and organisation names have none, so `results.v2/run` is a folder), and nothing of that
    name on disk."""
    text = str(source or "").strip()
    parts = text.split("/")
    return (len(parts) == 2 and all(parts) and not text.startswith((".", "/", "~")) and "." not in parts[0]
            and not Path(text).expanduser().exists())


def hub_url(repo_id: str, repo_type: str = "model") -> str:
    prefix = {"dataset": "datasets/", "space": "spaces/"}.get(repo_type, "")
    return f"https://huggingface.co/{prefix}{repo_id}"


@contextlib.contextmanager
def hub_errors(what: str, *, error: type[Exception] = HubError, repo_id: str | None = None,
               repo_type: str = "model", revision: str | None = None, filename: str | None = None,
               hint: str | None = None, write: bool = False) -> Iterator[None]:
    """Run Hub calls; every huggingface_hub failure (and OSError) becomes `error(message)`, chained.

    `what` starts each message ("prov-gigapath/prov-gigapath/config.json", "uploading x to y"); `hint` (another
    way to get there) ends it; `write=True` says that the token needs write access when the Hub refuses."""
    from huggingface_hub import get_token
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    tail = f"; {hint}" if hint else ""
    repo = repo_id or what
    try:
        yield
    except GatedRepoError as exc:
        url = hub_url(repo, repo_type)
        if get_token() is None:
            raise error(f"{repo} is a gated Hub repo and no Hugging Face token is set: accept its terms at {url}, "
                        f"then set HF_TOKEN (or run `hf auth login`){tail}.") from exc
        raise error(f"the Hugging Face token in use has no access to the gated repo {repo}: request access at "
                    f"{url} with that account (or use another HF_TOKEN){tail}.") from exc
    except RepositoryNotFoundError as exc:
        kind = {"dataset": "Hub dataset", "space": "Hub Space"}.get(repo_type, "Hub repository")
        raise error(f"{repo}: no such {kind}, or it is private (set HF_TOKEN if you have access){tail}.") from exc
    except RevisionNotFoundError as exc:
        raise error(f"{repo}: revision {revision!r} does not exist; pass an existing branch, tag or "
                    f"commit{tail}.") from exc
    except LocalEntryNotFoundError as exc:
        raise error(f"{what}: not in the local cache and the Hub is unreachable (offline?). Download it once "
                    f"while online{tail}.") from exc
    except EntryNotFoundError as exc:
        raise error(f"{repo}: has no file {filename!r} at revision {revision or 'main'}{tail}.") from exc
    except (HfHubHTTPError, OSError) as exc:
        if write:
            raise error(f"{what} failed: {_one_line(exc)}. Check that HF_TOKEN has write access to that namespace "
                        f"and the repository name{tail}.") from exc
        raise error(f"{what}: {hub_reason(exc)}{tail}.") from exc


def hub_download(repo_id: str, filename: str, revision: str | None = None, repo_type: str = "model",
                 hint: str | None = None, error: type[Exception] = HubError) -> str:
    """`hf_hub_download` (cached) with every failure as `error`; `hint` ends every message."""
    from huggingface_hub import hf_hub_download

    with hub_errors(f"{repo_id}/{filename}", error=error, repo_id=repo_id, repo_type=repo_type, revision=revision,
                    filename=filename, hint=hint):
        return hf_hub_download(repo_id, filename, revision=revision, repo_type=repo_type,
                               endpoint=os.environ.get("HF_ENDPOINT") or None)


def hub_snapshot(repo_id: str, *, revision: str | None = None, repo_type: str = "model",
                 allow_patterns: list[str] | None = None, hint: str | None = None,
                 error: type[Exception] = HubError) -> Path:
    """`snapshot_download` of the files matching `allow_patterns` (cached), failures as `error`."""
    from huggingface_hub import snapshot_download

    with hub_errors(repo_id, error=error, repo_id=repo_id, repo_type=repo_type, revision=revision, hint=hint):
        return Path(snapshot_download(repo_id, repo_type=repo_type, revision=revision, allow_patterns=allow_patterns))


def hub_unreachable(exc: BaseException | None) -> bool:
    """A connection failure or huggingface_hub's offline mode, anywhere in the exception's chain."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    while exc is not None:
        if isinstance(exc, (OfflineModeIsEnabled, ConnectionError, TimeoutError)) or \
                type(exc).__name__ in ("ConnectError", "ConnectTimeout", "ReadTimeout"):
            return True
        if isinstance(exc, OSError) and exc.errno is not None and exc.errno < 0:     # DNS: EAI_* codes
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def hub_reason(exc: BaseException) -> str:
    """A short reason for a failed Hub call: unreachable (offline?) or the failure itself."""
    if hub_unreachable(exc):
        return "the Hugging Face Hub cannot be reached from this machine (offline?)"
    return f"the download failed ({type(exc).__name__}: {_one_line(exc)}); check the network or use a local copy"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()).rstrip(".")


def hub_reachable(timeout_s: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the Hub endpoint (HF_ENDPOINT) opens within `timeout_s`."""
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def settle_hub_access(sources, timeout_s: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """When one of `sources` is a Hub id and the Hub cannot be reached, switch huggingface_hub to offline
    mode for this process (cached files still load; the rest fail at once, saying "offline?"). Returns a
    note saying so, else None. Nothing is probed when no source is on the Hub or offline mode is on."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or not any(looks_like_hub_id(s) for s in sources):
        return None
    if hub_reachable(timeout_s):
        return None
    constants.HF_HUB_OFFLINE = True
    note = (f"The Hugging Face Hub ({constants.ENDPOINT}) cannot be reached from this machine: Hub downloads are "
            "off for this run, only files already in the local cache are used. Restart when online.")
    log.warning(note)
    return note
