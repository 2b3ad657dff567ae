"""`wsi-llava push-model DIR REPO`: upload a training checkpoint to the Hugging Face Hub with its model card.

What is uploaded: the checkpoint's own files only (training_manifest.json, trained_weights.safetensors,
inherited_weights.safetensors, run_config.yaml, summary.json, metrics.jsonl) and README.md, the model
card regenerated from the manifest for this repo id. checkpoint-N folders, TensorBoard events and
optimizer states stay local. `wsi-llava train ... --push-to-hub REPO` calls the same function.

    wsi-llava push-model runs/stage3 my-org/wsi-llava-stage3 [--private] [--message TEXT]

Needs HF_TOKEN with write access (or `hf auth login`). Loading it back:
`training.model_setup.load_checkpoint("my-org/wsi-llava-stage3")`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.atomic import atomic_write_text
from common.hub import hub_errors
from training.checkpoint_io import HUB_PATTERNS, MODEL_CARD, read_manifest
from training.errors import TrainingError
from training.model_card import is_portable_source, render_model_card

UPLOADED = HUB_PATTERNS + ["summary.json", "metrics.jsonl"]


def push_checkpoint(folder: str | Path, repo_id: str, private: bool = False,
                    commit_message: str | None = None) -> str:
    """Create `repo_id` if needed and upload the checkpoint in `folder`; returns the commit URL."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    manifest = read_manifest(folder)
    if repo_id.count("/") != 1:
        raise TrainingError(f"{repo_id!r} is not a Hub repo id (owner/name).")
    atomic_write_text(folder / MODEL_CARD, render_model_card(manifest, repo_id))
    api = HfApi()
    message = commit_message or f"WSI-LLaVA stage {manifest['stage']} checkpoint (step {manifest.get('global_step')})"
    with hub_errors(f"uploading {folder} to {repo_id}", error=TrainingError, repo_id=repo_id, write=True):
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder), allow_patterns=UPLOADED,
                                   commit_message=message)
    return str(getattr(commit, "commit_url", commit))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wsi-llava push-model", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a `wsi-llava train` output folder (or one of its checkpoint-N folders)")
    parser.add_argument("repo", help="the Hub model repo id, owner/name")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--message", help="commit message")
    args = parser.parse_args(argv)
    try:
        manifest = read_manifest(args.folder)
        if not is_portable_source(manifest["rebuild"]["base_model"]):
            print(f"wsi-llava push-model: warning: the base model {manifest['rebuild']['base_model']} is a local "
                  "folder; the uploaded checkpoint loads only where that folder exists (the model card says so).",
                  file=sys.stderr)
        print(push_checkpoint(args.folder, args.repo, private=args.private, commit_message=args.message))
    except TrainingError as exc:
        print(f"wsi-llava push-model: {exc}", file=sys.stderr)
        return 1
    return 0
