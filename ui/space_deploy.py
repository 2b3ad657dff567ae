"""`wsi-llava deploy-space REPO`: upload the Gradio app to a Hugging Face Space.

What is uploaded: `app.py`, `wsi_llava_cli.py`, the packages (`ui`, `training`, `evaluation`, `curation`,
`modeling`, `wsi_bench`, `llm`, `common`), `spaces/README.md` as the Space's README (its front matter is the Space card:
sdk, sdk_version, app_file, python_version, suggested_hardware, models, datasets, hf_oauth) and
`spaces/requirements.txt` as its requirements. Caches and bytecode are never uploaded.

    wsi-llava deploy-space my-org/wsi-llava-studio [--private] [--dry-run]

Needs HF_TOKEN with write access (or `hf auth login`).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from common.hub import hub_errors

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ui", "training", "evaluation", "curation", "modeling", "wsi_bench", "llm", "common")
TOP_LEVEL_FILES = ("app.py", "wsi_llava_cli.py")
SPACE_FILES = {"spaces/README.md": "README.md", "spaces/requirements.txt": "requirements.txt"}
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "*.egg-info", "node_modules")


class SpaceDeployError(Exception):
    """The Space cannot be staged or uploaded; the message says why and what to do."""


def stage_space(destination: Path, project_root: Path = PROJECT_ROOT) -> list[str]:
    """Copy what the Space needs into `destination`; returns the relative paths staged."""
    for source, target in SPACE_FILES.items():
        if not (project_root / source).is_file():
            raise SpaceDeployError(f"{project_root / source} is missing: the Space cannot be built without it.")
        shutil.copy2(project_root / source, destination / target)
    for name in TOP_LEVEL_FILES:
        shutil.copy2(project_root / name, destination / name)
    for package in PACKAGES:
        shutil.copytree(project_root / package, destination / package, ignore=IGNORED)
    return sorted(str(p.relative_to(destination)) for p in destination.rglob("*") if p.is_file())


def deploy_space(repo_id: str, private: bool = False, project_root: Path = PROJECT_ROOT,
                 commit_message: str = "Deploy WSI-LLaVA studio") -> str:
    """Create (if needed) the Space `repo_id` and upload the app; returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    with tempfile.TemporaryDirectory(prefix="wsi-llava-space-") as tmp:
        stage_space(Path(tmp), project_root)
        with hub_errors(f"Uploading the Space {repo_id}", error=SpaceDeployError, repo_id=repo_id,
                        repo_type="space", write=True):
            api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
            commit = api.upload_folder(repo_id=repo_id, repo_type="space", folder_path=tmp,
                                       commit_message=commit_message)
    return str(commit.commit_url if hasattr(commit, "commit_url") else commit)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wsi-llava deploy-space", description=__doc__.splitlines()[0])
    parser.add_argument("repo", help="the Space id, owner/name")
    parser.add_argument("--private", action="store_true", help="create the Space as private")
    parser.add_argument("--dry-run", action="store_true", help="list the files that would be uploaded")
    args = parser.parse_args(argv)
    try:
        if args.dry_run:
            with tempfile.TemporaryDirectory() as tmp:
                for path in stage_space(Path(tmp)):
                    print(path)
            return 0
        print(deploy_space(args.repo, private=args.private))
    except SpaceDeployError as exc:
        print(f"wsi-llava deploy-space: {exc}", file=sys.stderr)
        return 1
    return 0
