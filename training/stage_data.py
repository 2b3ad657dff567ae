"""Each stage's training and validation examples as `datasets.Dataset`s, checked before training.

- stages 1-2 (reports): slide + report text, from `data.reports_file` or the report-generation items
  of `data.train`; stage 2 turns each into a conversation `<image>\\n{data.report_prompt}` -> report.
- stage 3 (instructions): every WSI-Bench item (open and closed tasks mixed), conversations as released.

Slide inputs are resolved under `data.features_root` (stage 1: tile-feature .h5 only, since it
trains the slide encoder); missing files stop the run with counts and examples, or with
`data.skip_missing_features` are left out and reported (never zero-filled). Validation is `data.val`
(which must share no patient with training) or a patient-level split (`data.val_fraction`). The
first `data.check_features` feature files are opened and checked against the model's dimensions.
`StageData.summary` says what was used and dropped (it goes to summary.json and the model card).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from modeling.errors import ModelError
from modeling.slide_inputs import INPUT_KINDS, SLIDE_TOKENS, TILE_FEATURES
from training.config import RunConfig
from training.data import (
    ReportPair,
    cross_task_leakage,
    load_items,
    read_reports_file,
    report_pairs_from_items,
    resolve_slide_inputs,
    split_by_patient,
    task_counts,
    unit_hash,
)
from training.errors import TrainingError


@dataclass
class StageData:
    train: object                 # datasets.Dataset
    val: object | None            # datasets.Dataset or None
    input_kind: str               # SLIDE_TOKENS | TILE_FEATURES
    summary: dict                 # counts (manifest, model card, summary.json)
    dropped: dict                 # every slide without features and every malformed record (summary.json)


def subsample(records: Sequence, max_items: int | None, seed: int) -> list:
    """A seeded, order-preserving subsample of at most `max_items` records (all when None)."""
    if max_items is None or len(records) <= max_items:
        return list(records)
    ranked = sorted(range(len(records)), key=lambda i: unit_hash(f"{records[i].image}|{i}", seed))
    return [records[i] for i in sorted(ranked[:max_items])]


def _read_records(config: RunConfig, source: str | None, split: str | None, problems: list[str],
                  reports_file: str | None = None) -> list:
    """Items (stage 3) or report pairs (stages 1-2: `reports_file` when given) from one source."""
    if config.spec.data_kind == "instructions":
        items, found = load_items(source, split=split, tasks=config.data.tasks)
        problems += found
        return items
    if reports_file:
        return read_reports_file(reports_file)
    items, found = load_items(source, split=split, tasks=["report_generation"])
    problems += found
    return report_pairs_from_items(items)


def _example(record, input_path: Path, config: RunConfig) -> dict:
    row = {"slide_id": record.slide_id, "image": record.image, "input_path": str(input_path)}
    if isinstance(record, ReportPair):
        row |= {"example_id": record.slide_id, "task": "report_generation", "text": record.text}
        if config.stage == 2:
            row["conversations"] = json.dumps([
                {"from": "human", "value": f"<image>\n{config.data.report_prompt}"},
                {"from": "gpt", "value": record.text}])
        return row
    return row | {"example_id": record.question_id, "task": record.task, "text": record.answer,
                  "conversations": json.dumps(record.conversations, ensure_ascii=False)}


def _resolve(config: RunConfig, records: list, name: str):
    kinds = (TILE_FEATURES,) if config.stage == 1 else INPUT_KINDS
    try:
        return resolve_slide_inputs(records, config.data.features_root, config.data.skip_missing_features, kinds)
    except TrainingError as exc:
        hint = (" Stage 1 trains the slide encoder, so it needs tile-feature .h5 files (released .pt slide "
                "tokens are the encoder's output)." if config.stage == 1 else "")
        raise TrainingError(f"{name} data: {exc} (data.skip_missing_features: true, or --skip-missing-features)"
                            f"{hint}") from exc


def _check_kinds(resolved_sets: list) -> str:
    kinds = {ref.kind for resolved in resolved_sets for ref in resolved.inputs.values()}
    if len(kinds) > 1:
        counts = {kind: sum(ref.kind == kind for r in resolved_sets for ref in r.inputs.values()) for kind in kinds}
        raise TrainingError(f"data.features_root mixes slide-token .pt files and features .h5 files ({counts}); "
                            "one run takes one kind: keep only one kind in the folder.")
    if not kinds:
        raise TrainingError("no item has slide inputs under data.features_root.")
    return kinds.pop()


def check_feature_files(paths: Sequence[Path], model_config) -> None:
    """Open the given feature files and check them against the model; TrainingError naming the file."""
    from modeling.slide_inputs import check_compatible, load_slide_inputs

    encoder = model_config.slide_encoder()
    widths = {model_config.slide_token_dim} | ({encoder.embed_dim} if encoder is not None else set())
    for path in paths:
        try:
            inputs = load_slide_inputs(path)
            check_compatible(inputs, model_config)
        except ModelError as exc:
            raise TrainingError(f"data.features_root: {exc}") from exc
        if inputs.kind == SLIDE_TOKENS and inputs.slide_tokens.shape[-1] not in widths:
            # modeling zero-pads any narrower tokens; for training only the two real widths are accepted
            raise TrainingError(f"data.features_root: {path}: slide tokens are {inputs.slide_tokens.shape[-1]}-d; "
                                f"{model_config.name_for_display} takes {sorted(widths)}-d slide tokens (its slide "
                                "encoder's width, or zero-padded to the projector's). They come from another "
                                "slide encoder: re-extract them.")


def _to_dataset(rows: list[dict]):
    from datasets import Dataset

    return Dataset.from_list(rows)


def prepare_stage_data(config: RunConfig, model_config) -> StageData:
    """Train/val datasets for `config`'s stage; `model_config` is the base WsiLlavaConfig."""
    data = config.data
    if config.stage == 1 and model_config.slide_encoder() is None:
        raise TrainingError("model.base_model has no slide encoder (slide-token-only checkpoint); stage 1 trains one.")
    problems: list[str] = []
    train_records = subsample(_read_records(config, data.train, data.split, problems, data.reports_file),
                              data.max_items, data.split_seed)
    if not train_records:
        raise TrainingError(f"{data.train or data.reports_file}: no training examples for stage {config.stage}.")
    val_records: list = []
    split_kind = "none"
    if data.val is not None:
        val_records = _read_records(config, data.val, data.val_split, problems)
        leakage = cross_task_leakage({"train": train_records, "val": val_records})
        if not leakage["leak_free"]:
            pair = leakage["pairs"][0]
            raise TrainingError(f"data.val shares {pair['shared_patients']} patient(s) with data.train (e.g. "
                                f"{pair['examples']}); validation must hold out whole patients. Use data.val_fraction "
                                "for a patient-level split instead.")
        split_kind = "given"
    elif data.val_fraction > 0:
        _, val_slides = split_by_patient({r.slide_id for r in train_records}, data.val_fraction, data.split_seed)
        val_records = [r for r in train_records if r.slide_id in val_slides]
        train_records = [r for r in train_records if r.slide_id not in val_slides]
        split_kind = f"patient-level, val_fraction={data.val_fraction}, seed={data.split_seed}"
        if not train_records or not val_records:
            raise TrainingError(f"data.val_fraction={data.val_fraction} leaves {len(train_records)} training and "
                                f"{len(val_records)} validation examples; change it or give data.val.")
    resolved_train = _resolve(config, train_records, "training")
    resolved_val = _resolve(config, val_records, "validation") if val_records else None
    resolved_sets = [resolved_train] + ([resolved_val] if resolved_val else [])
    input_kind = _check_kinds(resolved_sets)
    check_paths = sorted({ref.path for r in resolved_sets for ref in r.inputs.values()})[:data.check_features]
    check_feature_files(check_paths, model_config)

    def rows(resolved) -> list[dict]:
        return [_example(record, resolved.inputs[record.image].path, config) for record in resolved.items]

    train_rows = rows(resolved_train)
    val_rows = rows(resolved_val) if resolved_val else []
    if config.stage == 1 and (len(train_rows) < 2 or 0 < len(val_rows) < 2):
        raise TrainingError(f"stage 1 needs >= 2 slide-report pairs per set (train {len(train_rows)}, "
                            f"val {len(val_rows)}).")
    summary = {
        "train_source": data.reports_file if (config.spec.data_kind == "reports" and data.reports_file) else data.train,
        "val_source": data.val, "validation_split": split_kind, "input_kind": input_kind,
        "features_root": data.features_root,
        "n_train": len(train_rows), "n_val": len(val_rows),
        "train_slides": len({r["slide_id"] for r in train_rows}), "val_slides": len({r["slide_id"] for r in val_rows}),
        "train_tasks": task_counts(resolved_train.items) if config.spec.data_kind == "instructions" else None,
        "missing_features": {"train": resolved_train.report(), "val": resolved_val.report() if resolved_val else None},
        "skipped_missing_features": data.skip_missing_features,
        "n_malformed_records": len(problems), "malformed_examples": problems[:10],
        "max_items": data.max_items,
    }
    dropped = {"slides_without_features": {"train": resolved_train.missing_images,
                                           "val": resolved_val.missing_images if resolved_val else []},
               "malformed_records": problems}
    return StageData(_to_dataset(train_rows), _to_dataset(val_rows) if val_rows else None, input_kind, summary,
                     dropped)
