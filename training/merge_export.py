"""A trained stage 2-3 checkpoint -> a standalone WSI-LLaVA checkpoint every loader opens (`--merge`).

The base is rebuilt, the trained weights loaded, LoRA merged into the language model's weights, and
the result saved with `save_pretrained` (+ the processor) and `config.is_trained = True`, so
`modeling.checkpoints.load_model`, `wsi-llava ask` and the app show it as trained. The folder is
written under a temporary name and renamed when complete; an existing destination is never touched.

    wsi-llava train --merge runs/stage3 ./wsi-llava-stage3-merged
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from training.checkpoint_io import MODEL_CARD, read_manifest
from training.errors import TrainingError


def merge_checkpoint(source: str, destination: str | Path, revision: str | None = None) -> Path:
    from training.checkpoint_io import fetch_checkpoint
    from training.model_setup import load_checkpoint

    destination = Path(destination)
    if destination.exists():
        raise TrainingError(f"{destination} already exists; choose a new folder (nothing is overwritten).")
    folder = fetch_checkpoint(source, revision)
    manifest = read_manifest(folder)
    if manifest["stage"] == 1:
        raise TrainingError(f"{source} is a stage 1 (slide-text alignment) checkpoint: it has no language model to "
                            "merge; use it as model.init_from of stage 2 or 3.")
    if manifest["rebuild"].get("load_4bit"):
        print("note: trained with a 4-bit base (QLoRA); merging onto the full-precision base.")
    stage_model = load_checkpoint(str(folder), device="cpu")
    model = stage_model.model.merge_and_unload() if stage_model.spec.lora else stage_model.core
    model.config.is_trained = True
    model.config.display_name = f"{source} (merged)"
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        model.save_pretrained(tmp)
        stage_model.processor.save_pretrained(tmp)
        if (folder / MODEL_CARD).is_file():
            shutil.copy2(folder / MODEL_CARD, tmp / MODEL_CARD)
        tmp.rename(destination)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return destination
