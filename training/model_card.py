"""The model card (README.md) of a training checkpoint, generated from its manifest.

It states the base models (ids, revisions, commits), the stage and what trained, the data (sources,
counts, tasks, missing features, validation split), the hyperparameters, the validation metrics,
how to load it, the intended use and the limits. Not for clinical use, in the first lines.

    text = render_model_card(read_manifest("runs/stage3"), repo_id="my-org/wsi-llava-stage3")
"""

from __future__ import annotations

import json
from pathlib import Path

from modeling.checkpoints import KNOWN_CHECKPOINTS


def is_portable_source(source: str | None) -> bool:
    """A Hub id or a built-in name (anyone can rebuild from it), not a local folder."""
    if not source:
        return False
    return source in KNOWN_CHECKPOINTS or (source.count("/") == 1 and not Path(source).exists()
                                           and not source.startswith((".", "/", "~")))


def _front_matter(manifest: dict, repo_id: str | None) -> str:
    rebuild = manifest["rebuild"]
    lines = ["---", "tags:", "- wsi-llava", "- pathology", "- whole-slide-image", f"- stage-{manifest['stage']}",
             "- not-for-clinical-use"]
    base = rebuild["base_model"]
    if is_portable_source(base) and base not in KNOWN_CHECKPOINTS:
        lines += ["base_model:", f"- {base}"]
    data_source = (manifest.get("data") or {}).get("train_source")
    if data_source and is_portable_source(data_source) and not Path(data_source).suffix:
        lines += ["datasets:", f"- {data_source}"]
    lines.append(f"pipeline_tag: {'feature-extraction' if manifest['stage'] == 1 else 'image-text-to-text'}")
    lines.append("---")
    return "\n".join(lines)


def _table(rows: dict, header=("setting", "value")) -> str:
    if not rows:
        return "_none recorded_"
    out = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    for key, value in rows.items():
        shown = f"{value:.4g}" if isinstance(value, float) else json.dumps(value) if isinstance(value, (list, dict)) \
            else str(value)
        out.append(f"| {key} | {shown} |")
    return "\n".join(out)


def _base_section(manifest: dict) -> str:
    rebuild = manifest["rebuild"]
    model_config = manifest.get("model_config") or {}
    rows = {"WSI-LLaVA base checkpoint": rebuild["base_model"],
            "base revision": rebuild.get("base_model_revision") or "default branch",
            "base commit": rebuild.get("base_model_commit") or "n/a (local folder or built-in)",
            "language model": model_config.get("language_model_source") or "as in the base checkpoint",
            "language model revision": model_config.get("language_model_revision") or "n/a",
            "slide encoder": model_config.get("slide_encoder_source") or "as in the base checkpoint",
            "tile encoder": model_config.get("tile_encoder") or "n/a"}
    if manifest["stage"] == 1:
        rows["text encoder"] = rebuild["text_encoder"]["source"]
        rows["text encoder revision"] = rebuild["text_encoder"].get("revision") or "default branch"
    if rebuild.get("load_4bit"):
        rows["quantisation during training"] = "language model 4-bit nf4 (QLoRA)"
    text = _table(rows, ("base", "source"))
    if not is_portable_source(rebuild["base_model"]):
        text += ("\n\n**Warning:** the base checkpoint is a local folder; this checkpoint can only be loaded where "
                 "that folder exists. Train from a Hub base (or push the base) to make it reproducible.")
    for source in manifest.get("inherited") or []:
        modules = ", ".join(m.rstrip(".") for m in source["modules"])
        fate = "the starting point of this stage's training" if source.get("trained_here") else \
            "kept frozen here, stored in `inherited_weights.safetensors`"
        text += f"\n\nFrom the stage {source['stage']} checkpoint `{source['source']}`: {modules} ({fate})."
    return text


def _data_section(data: dict) -> str:
    rows = {k: data.get(k) for k in ("train_source", "val_source", "validation_split", "input_kind", "n_train",
                                     "n_val", "train_slides", "val_slides", "max_items")}
    missing = (data.get("missing_features") or {}).get("train") or {}
    rows["items without feature files (train)"] = missing.get("n_items_missing_inputs", 0)
    rows["skipped (data.skip_missing_features)"] = data.get("skipped_missing_features")
    rows["malformed records skipped"] = data.get("n_malformed_records", 0)
    text = _table(rows)
    if data.get("train_tasks"):
        text += "\n\nTraining items per task:\n\n" + _table(data["train_tasks"], ("task", "items"))
    return text


def render_model_card(manifest: dict, repo_id: str | None = None) -> str:
    stage = manifest["stage"]
    name = repo_id or f"WSI-LLaVA stage {stage} checkpoint"
    trained = manifest.get("trained_parameters") or {}
    load = (f"from training.model_setup import load_checkpoint\n"
            f"stage_model = load_checkpoint(\"{repo_id or 'PATH'}\")   # rebuilds the base, adds the trained weights")
    if stage > 1:
        load += ("\nmodel, processor = stage_model.core, stage_model.processor\n\n"
                 f"# or a standalone, merged checkpoint any loader opens:\n"
                 f"#   wsi-llava train --merge {repo_id or 'PATH'} ./merged && wsi-llava ask SLIDE --model ./merged")
    parts = [
        _front_matter(manifest, repo_id),
        f"# {name}",
        ("**Not for clinical use.** A research model: its outputs are not validated for diagnosis, grading, "
         "staging, prognosis or treatment decisions and must not be used for patient care."),
        (f"WSI-LLaVA training stage {stage} ({manifest['stage_title']}), trained with WSI-LLaVA studio's "
         f"`wsi-llava train --stage {stage}`. Trained modules: {', '.join(trained) or 'n/a'} "
         f"({sum(trained.values()):,} trained parameters). This repository holds only what was trained; the "
         "frozen rest is rebuilt from the base below."),
        "## Base models\n\n" + _base_section(manifest),
        "## How to load\n\n```python\n" + load + "\n```",
        "## Training data\n\n" + _data_section(manifest.get("data") or {}),
        "## Hyperparameters\n\n" + _table(manifest.get("hyperparameters") or {}),
        ("## Validation metrics\n\n" + _table(manifest.get("metrics") or {}, ("metric", "value"))
         + f"\n\n`eval_*`: the validation set (see Training data); `train_*`: the training run. At optimizer "
         f"step {manifest.get('global_step')}, epoch {float(manifest.get('epoch') or 0):.2f}."),
        ("## Intended use\n\nResearch on multimodal models for pathology whole slide images: reproducing and "
         "extending WSI-LLaVA (slide-text alignment, projector alignment, instruction tuning on WSI-Bench) and "
         "benchmarking on WSI-Bench."),
        ("## Limitations\n\n- Not for clinical use; not a medical device.\n"
         "- Trained on TCGA-derived WSI-Bench text written partly by an LLM; answers can be fluent and wrong, "
         "and reflect TCGA's cancer types, sites and populations only.\n"
         "- Slide inputs must come from the same tile and slide encoders as in training (see Base models).\n"
         "- The licences of the base models (e.g. the LLaMA 2 licence of Vicuna) and of the data apply."),
        ("## Files\n\n`training_manifest.json` (how to rebuild, data, hyperparameters, metrics), "
         "`trained_weights.safetensors` (trained parameters only), `inherited_weights.safetensors` (modules "
         "carried over from earlier stages, when present), `run_config.yaml` (the resolved config)."),
    ]
    return "\n\n".join(parts) + "\n"
