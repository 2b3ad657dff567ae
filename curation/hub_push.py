"""Publish an export folder to the Hugging Face Hub as a dataset repository (lead only).

The Parquet splits go up with `DatasetDict.push_to_hub`; a second commit adds the dataset card (whose
YAML `configs` point `load_dataset` at the Parquet files), the WSI-Bench LLaVA JSON and JSONL files and
`summary.json`. The token comes from `HF_TOKEN` / the Hugging Face login, never from the store. Run it
with `wsi-llava curate push --store S --as LEAD --repo-id ORG/NAME`, or:

    push_export(store, "curated/", "org/wsi-bench-curated", actor="lead")
"""

from __future__ import annotations

from pathlib import Path

from common.hub import hub_errors
from curation.errors import CurationError
from curation.store.review_store import ReviewStore


def load_export(folder: str | Path):
    """The DatasetDict of an export folder (its `data/{split}-*.parquet` files)."""
    from datasets import Dataset, DatasetDict

    folder = Path(folder)
    files = sorted((folder / "data").glob("*.parquet"))
    if not (folder / "summary.json").exists() or not files:
        raise CurationError(f"{folder} is not an export folder (no summary.json or data/*.parquet); run "
                            "`wsi-llava curate export` first.")
    splits: dict[str, list[str]] = {}
    for path in files:
        splits.setdefault(path.name.split("-")[0], []).append(str(path))
    return DatasetDict({split: Dataset.from_parquet(paths) for split, paths in splits.items()})


def push_export(store: ReviewStore, folder: str | Path, repo_id: str, actor: str, private: bool = False,
                token: str | None = None) -> dict:
    from huggingface_hub import HfApi

    store.require_lead(actor)
    folder = Path(folder)
    dataset = load_export(folder)
    with hub_errors(f"Pushing to the Hub dataset {repo_id!r}", error=CurationError, repo_id=repo_id,
                    repo_type="dataset", write=True):
        dataset.push_to_hub(repo_id, private=private, token=token,
                            commit_message="Curated WSI-Bench-style pairs (Parquet splits)")
        api = HfApi(token=token)
        commit = api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=str(folder),
                                   allow_patterns=["README.md", "summary.json", "llava/*.json", "jsonl/*.jsonl"],
                                   commit_message="Dataset card, WSI-Bench LLaVA JSON and JSONL files")
    result = {"repo_id": repo_id, "splits": {k: v.num_rows for k, v in dataset.items()},
              "commit": getattr(commit, "oid", None)}
    store.record_action(actor, "push", result)
    return result
