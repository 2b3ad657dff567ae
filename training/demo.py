"""Try training on the CPU in one command, in a fresh clone: `wsi-llava train --demo [DIR]`.

It writes a small SYNTHETIC WSI-Bench-format data set into DIR/data (default runs/demo): per-task LLaVA
JSON files (report generation, grading, histological typing, staging choice, prognosis yes/no) about
invented slides, and one random tile-feature h5 per slide (192-d, the demo model's `random-tiny` tile
encoder, with tile coordinates). Then it runs the three stages of `training/configs/tiny.yaml` chained
(stage 2 starts from stage 1, stage 3 from both), merges stage 3 into a standalone model and prints one
JSON report. The texts and features are random: the run shows that the machinery works (losses,
checkpoints, resume, merge), not model quality. About a minute on 2 cores.

    wsi-llava train --demo                              # runs/demo/{data,stage1,stage2,stage3,stage3-merged}
    wsi-llava train --stage 3 --config training/configs/tiny.yaml     # again, alone, on the same data
    wsi-llava ask runs/demo/data/h5/TCGA-DEMO/<slide>.h5 -q "What is the grade?" --model runs/demo/stage3-merged
"""

from __future__ import annotations

import json
from pathlib import Path

DEMO_ROOT = Path("runs/demo")
TINY_CONFIG = Path(__file__).resolve().parent / "configs" / "tiny.yaml"
TILE_FEATURE_DIM = 192               # the demo model's `random-tiny` tile encoder
TILE_SIZE_PX = 256
GRADES = ["well differentiated", "moderately differentiated", "poorly differentiated"]
TYPES = ["invasive ductal carcinoma", "lung adenocarcinoma", "clear cell renal cell carcinoma",
         "colorectal adenocarcinoma"]
FINDINGS = ["necrosis", "lymphovascular invasion", "clear cytoplasm", "mucinous glands", "papillary fronds"]
STAGES = ["T1 N0 M0", "T2 N0 M0", "T3 N1 M0", "T4 N2 M1"]


def demo_slide_id(index: int) -> str:
    return f"TCGA-DM-{1000 + index:04d}-01Z-00-DX1.{index:08X}-DEMO-0000-0000-000000000000"


def demo_image(index: int) -> str:
    return f"TCGA-DEMO/{demo_slide_id(index)}.pt"


def _record(qid: str, index: int, question: str, answer: str) -> dict:
    return {"id": qid, "image": demo_image(index),
            "conversations": [{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": answer}]}


def _task_records(index: int) -> dict[str, dict]:
    """One synthetic question per task for slide `index` (file stem -> record)."""
    grade, kind, finding = GRADES[index % 3], TYPES[index % 4], FINDINGS[index % 5]
    stage = index % 4
    options = " ".join(f"{letter}) {text}" for letter, text in zip("ABCD", STAGES))
    return {
        "1_Report": _record(f"demo-r{index}", index, "Write the pathology report of this slide.",
                            f"The slide shows {kind}, {grade}, with {finding}. Margins are free of tumour."),
        "Grading": _record(f"demo-g{index}", index, "What is the histological grade?",
                           f"The tumour is {grade}."),
        "Histological_Typing": _record(f"demo-h{index}", index, "What is the histological type?",
                                       f"The histological type is {kind}."),
        "Staging_choice": _record(f"demo-s{index}", index, f"What is the pathological stage? {options}",
                                  "ABCD"[stage]),
        "Prognosis_TF_question": _record(f"demo-p{index}", index, "Is the prognosis poor?",
                                         "Yes" if stage >= 2 else "No"),
    }


def write_demo_data(root: Path, n_slides: int = 64, seed: int = 0) -> dict:
    """The synthetic WSI-Bench files (root/bench) and tile features (root/h5); returns what was written."""
    import numpy as np
    import torch

    from modeling.slide.features_h5 import SlideFeatures, write_features_h5

    files: dict[str, list[dict]] = {}
    for index in range(n_slides):
        for stem, record in _task_records(index).items():
            files.setdefault(stem, []).append(record)
    bench = root / "bench"
    bench.mkdir(parents=True, exist_ok=True)
    for stem, records in files.items():
        (bench / f"{stem}_train.json").write_text(json.dumps(records, indent=1), encoding="utf-8")
    generator = torch.Generator().manual_seed(seed)
    for index in range(n_slides):
        n_tiles = int(torch.randint(40, 160, (1,), generator=generator))
        cells = torch.randperm(40 * 40, generator=generator)[:n_tiles].numpy()
        coords_level0 = np.stack([cells // 40, cells % 40], axis=-1).astype(np.int64) * TILE_SIZE_PX  # [N, 2]
        attrs = {"patch_size": TILE_SIZE_PX, "patch_size_level0": TILE_SIZE_PX, "encoder": "random-tiny",
                 "encoder_trained": False, "synthetic": True}
        features = torch.randn(n_tiles, TILE_FEATURE_DIM, generator=generator)                        # [N, D]
        h5 = (root / "h5" / demo_image(index)).with_suffix(".h5")
        h5.parent.mkdir(parents=True, exist_ok=True)
        write_features_h5(h5, SlideFeatures(features, coords_level0, attrs))
    return {"bench": str(bench), "features_root": str(root / "h5"), "slides": n_slides,
            "items": {stem: len(records) for stem, records in files.items()}}


def _last_loss(output_dir: Path) -> float | None:
    rows = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    losses = [row["loss"] for row in rows if "loss" in row]
    return losses[-1] if losses else None


def run_demo(root: Path = DEMO_ROOT, max_steps: int | None = None) -> dict:
    """Write the demo data (if missing), run stages 1 -> 2 -> 3 of tiny.yaml chained, merge stage 3."""
    from training.config_loading import load_config
    from training.errors import TrainingError
    from training.merge_export import merge_checkpoint
    from training.run import run_stage

    earlier = [str(root / name) for name in ("stage1", "stage2", "stage3", "stage3-merged") if (root / name).exists()]
    if earlier:
        raise TrainingError(f"{root} holds an earlier demo run ({', '.join(earlier)}); nothing is overwritten: delete "
                            f"those folders (its data in {root / 'data'} is reused) or pass another folder: "
                            "wsi-llava train --demo OTHER_DIR")
    data = root / "data"
    written = write_demo_data(data) if not (data / "bench").is_dir() else {"bench": str(data / "bench"),
                                                                           "reused": True}
    common = [("data.train", str(data / "bench")), ("data.features_root", str(data / "h5"))]
    if max_steps is not None:
        half = str(max(1, max_steps // 2))
        common += [("train.max_steps", str(max_steps)), ("train.save_steps", half), ("train.eval_steps", half)]
    report: dict = {"data": written, "synthetic": True, "stages": {}}
    done: list[str] = []
    for stage in (1, 2, 3):
        out = root / f"stage{stage}"
        overrides = common + [("train.output_dir", str(out)), ("model.init_from", json.dumps(done))]
        result = run_stage(load_config(TINY_CONFIG, stage=stage, overrides=overrides))
        report["stages"][stage] = {"output_dir": str(result.output_dir), "steps": result.summary["global_step"],
                                   "last_loss": _last_loss(result.output_dir)}
        done.append(str(out))
    report["merged_model"] = str(merge_checkpoint(str(root / "stage3"), root / "stage3-merged"))
    return report
