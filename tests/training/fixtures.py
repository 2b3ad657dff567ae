"""Small training fixtures written in the real WSI-Bench formats, with tiny random slide inputs.

    bench = write_bench(tmp_path)          # LLaVA JSON per task (+ report items) and an official JSONL
    base = save_tiny_checkpoint(tmp_path / "base")
    config = make_config(tmp_path, bench, base, stage=3, train={"max_steps": 2})

Slides are TCGA-style ids of distinct patients; each has a slide-token `.pt` (8 x 32, the tiny model's
size) under `bench.pt_root` and a features `.h5` (16-d tile features) under `bench.h5_root`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.helpers.tiny_models import (
    TINY_NUM_SLIDE_TOKENS,
    TINY_SLIDE_TOKEN_DIM,
    TINY_TILE_FEATURE_DIM,
    write_features_h5,
    write_slide_tokens_pt,
)

GRADES = ["well differentiated", "moderately differentiated", "poorly differentiated"]
SITES = ["breast", "lung", "kidney", "colon", "liver", "ovary", "thyroid", "bladder"]
FINDINGS = ["extensive necrosis", "lymphovascular invasion", "clear cell change", "mucinous glands",
            "trabecular plates", "papillary fronds", "nuclear grooves", "squamous nests"]


def slide_id(patient: int) -> str:
    return f"TCGA-A{patient % 10}-{1000 + patient:04d}-01Z-00-DX1.{patient:08X}-AAAA-BBBB-CCCC-000000000000"


def image(patient: int) -> str:
    return f"TCGA-BRCA/{slide_id(patient)}.pt"


def _record(qid: str, patient: int, question: str, answer: str) -> dict:
    return {"id": qid, "image": image(patient),
            "conversations": [{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": answer}]}


@dataclass
class Bench:
    folder: Path
    pt_root: Path
    h5_root: Path
    patients: list[int]


def write_bench(root: Path, patients: int = 8) -> Bench:
    """Per-task LLaVA JSON (Grading, Staging_choice, 1_Report) + official JSONL, and both feature kinds."""
    folder = root / "bench"
    folder.mkdir(parents=True)
    ids = list(range(patients))
    grading = [_record(f"g{p}", p, "What is the grade of this carcinoma?",
                       f"The carcinoma is {GRADES[p % 3]}.") for p in ids]
    choice = [_record(f"s{p}", p, "What is the stage? A) T1 N0 M0 B) T2 N0 M0 C) T3 N1 M0 D) T4 N2 M1",
                      "ABCD"[p % 4]) for p in ids]
    reports = [_record(f"r{p}", p, "Describe this slide in a pathology report.",
                       f"{SITES[p % 8]} carcinoma, {GRADES[p % 3]}, with {FINDINGS[p % 8]}.") for p in ids]
    (folder / "Grading_train.json").write_text(json.dumps(grading))
    (folder / "Staging_choice_train.json").write_text(json.dumps(choice))
    (folder / "1_Report_train.json").write_text(json.dumps(reports))
    rows = [{"question_id": f"o{p}", "image": image(p), "question": "<image>\nWhat is the prognosis?",
             "T-answer": "The prognosis is favourable." if p % 2 else "The prognosis is poor.",
             "metadata": "Prognosis"} for p in ids]
    (folder / "WSI-Bench-train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    pt_root, h5_root = root / "features-pt", root / "features-h5"
    for p in ids:
        pt = pt_root / image(p)
        pt.parent.mkdir(parents=True, exist_ok=True)
        write_slide_tokens_pt(pt, num_tokens=TINY_NUM_SLIDE_TOKENS, dim=TINY_SLIDE_TOKEN_DIM, padded_from=None,
                              seed=p)
        h5 = (h5_root / image(p)).with_suffix(".h5")
        h5.parent.mkdir(parents=True, exist_ok=True)
        write_features_h5(h5, n_tiles=12 + 3 * p, dim=TINY_TILE_FEATURE_DIM, seed=p)
    return Bench(folder, pt_root, h5_root, ids)


def config_dict(root: Path, bench: Bench, base: Path, stage: int, **sections) -> dict:
    """A tiny config for `stage` (CPU, a few steps); `sections` update its sections key by key."""
    config = {
        "stage": stage,
        "data": {"train": str(bench.folder), "split": "train",
                 "features_root": str(bench.h5_root if stage == 1 else bench.pt_root), "max_length": 256,
                 "text_max_length": 32},
        "model": {"base_model": str(base)},
        "alignment": {"text_encoder": "tiny-random-bert", "text_pooling": "mean", "embed_dim": 16,
                      "recall_at": [1, 2]},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.05},
        "train": {"output_dir": str(root / f"run-stage{stage}"), "max_steps": 2, "learning_rate": 1e-3,
                  "projector_lr": 1e-3, "effective_batch_size": 2, "per_device_batch_size": 2,
                  "per_device_eval_batch_size": 4, "warmup_ratio": 0.0, "lr_scheduler": "constant",
                  "logging_steps": 1, "save_steps": 100, "tensorboard": False, "seed": 7},
    }
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    return config


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def make_config(root: Path, bench: Bench, base: Path, stage: int, name: str = "config.yaml", **sections):
    """The tiny config written as YAML and loaded through the real loader."""
    from training.config_loading import load_config

    return load_config(write_config(root / name, config_dict(root, bench, base, stage, **sections)))
