"""Integration run: all three training stages end to end on the real WSI-Bench train-small files.

The items (questions, answers, slide ids) are the real files in ../shared/wsi-bench-train-small. The
slide features are SYNTHETIC: random tile features (.h5, 192-d, the demo model's `random-tiny` tile
encoder) and random 576 x 1024 slide tokens (.pt) written to a temporary features root, one per slide
of the sampled items. Train-small has no report-generation file, so stages 1-2 use a SYNTHETIC
stand-in report per slide: its real answers in train-small joined into one text (written as a
reports.jsonl). The model is the built-in random demo and a random tiny BERT (training/configs/tiny.yaml).
So the numbers show the machinery works end to end (stage 1 -> 2 -> 3 chained through
model.init_from, resume, a merged export), not model quality.

    python benchmarks/training_integration.py [--bench ../shared/wsi-bench-train-small] [--out DIR]
    python benchmarks/training_integration.py --features-only runs/synthetic-features

Prints one JSON object: per stage the steps, seconds, first/last training loss and validation metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEMO_TILE_FEATURE_DIM = 192
STAGE_TASKS = ["grading", "staging", "prognosis", "treatment_planning", "molecular_subtyping",
               "staging_choice", "prognosis_yes_no", "molecular_subtyping_choice"]


def write_synthetic_features(bench: str, out: Path, max_items: int = 64, seed: int = 0) -> dict:
    """Random features for every slide of the items tiny.yaml samples (+ a stand-in reports.jsonl)."""
    import numpy as np
    import torch

    from modeling.slide.features_h5 import SlideFeatures, write_features_h5
    from training.data import load_items
    from training.stage_data import subsample

    items, problems = load_items(bench, split="train")
    by_slide: dict[str, list] = defaultdict(list)
    for item in items:
        by_slide[item.image].append(item)
    chosen = {item.image for item in subsample(items, max_items, 0)}
    # reports: every slide with >= 2 answers, plus the sampled ones (stages 1-2 sample reports separately)
    report_images = sorted(image for image, group in by_slide.items() if len(group) >= 3)[:max_items]
    images = sorted(chosen | set(report_images))
    generator = torch.Generator().manual_seed(seed)
    for index, image in enumerate(images):
        slide = Path(image)
        n_tiles = int(torch.randint(40, 200, (1,), generator=generator))
        cells = torch.randperm(60 * 60, generator=generator)[:n_tiles].numpy()
        coords = np.stack([cells // 60, cells % 60], axis=-1).astype(np.int64) * 256
        attrs = {"patch_size": 256, "patch_size_level0": 256, "encoder": "random-tiny", "encoder_trained": False,
                 "synthetic": True}
        h5 = out / "h5" / slide.with_suffix(".h5")
        h5.parent.mkdir(parents=True, exist_ok=True)
        write_features_h5(h5, SlideFeatures(torch.randn(n_tiles, DEMO_TILE_FEATURE_DIM, generator=generator),
                                            coords, attrs))
        pt = out / "pt" / slide
        pt.parent.mkdir(parents=True, exist_ok=True)
        tokens = torch.randn(576, 1024, generator=generator)
        tokens[:, 768:] = 0                                  # as released: 768-d tokens zero-padded to 1024
        torch.save(tokens, pt)
    with open(out / "reports.jsonl", "w", encoding="utf-8") as handle:
        for image in report_images:
            group = by_slide[image]
            text = " ".join(f"{item.task.replace('_', ' ').capitalize()}: {item.answer}" for item in group
                            if item.answer_format == "open")
            handle.write(json.dumps({"slide_id": group[0].slide_id, "image": image, "text": text}) + "\n")
    return {"slides": len(images), "report_slides": len(report_images), "items_in_bench": len(items),
            "malformed_records_in_bench": len(problems)}


def _losses(output_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if "loss" in row]


def run(bench: str, out: Path, max_steps: int) -> dict:
    from training.config_loading import load_config
    from training.run import run_stage

    features = out / "features"
    report = {"features": write_synthetic_features(bench, features), "stages": {}}
    common = [("data.train", bench), ("data.reports_file", str(features / "reports.jsonl")),
              ("data.features_root", str(features / "h5")), ("train.max_steps", str(max_steps)),
              ("train.save_steps", str(max(1, max_steps // 2))), ("train.eval_steps", str(max(1, max_steps // 2)))]
    chain = {1: [], 2: [str(out / "stage1")], 3: [str(out / "stage1"), str(out / "stage2")]}
    for stage in (1, 2, 3):
        overrides = common + [("train.output_dir", str(out / f"stage{stage}")),
                              ("model.init_from", json.dumps(chain[stage]))]
        config = load_config("training/configs/tiny.yaml", stage=stage, overrides=overrides)
        started = time.perf_counter()
        result = run_stage(config)
        losses = _losses(result.output_dir)
        report["stages"][stage] = {
            "seconds": round(time.perf_counter() - started, 1), "steps": result.summary["global_step"],
            "n_train": result.summary["data"]["n_train"], "n_val": result.summary["data"]["n_val"],
            "first_loss": losses[0], "last_loss": losses[-1],
            "metrics": {k: round(v, 4) for k, v in result.metrics.items() if k.startswith("eval_")},
            "trained_parameters": result.summary["trained_parameters"]}
    # resume: continue stage 3 for more steps from its last checkpoint
    config = load_config("training/configs/tiny.yaml", stage=3, overrides=common + [
        ("train.output_dir", str(out / "stage3")), ("model.init_from", json.dumps(chain[3])),
        ("train.max_steps", str(max_steps + 2)), ("train.resume_from_checkpoint", "last")])
    resumed = run_stage(config)
    report["stage3_resumed_to_step"] = resumed.summary["global_step"]
    from modeling.checkpoints import load_model
    from training.merge_export import merge_checkpoint

    merged = merge_checkpoint(str(out / "stage3"), out / "stage3-merged")
    loaded = load_model(str(merged), device="cpu")
    report["merged_banner"] = loaded.banner()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", default="../shared/wsi-bench-train-small")
    parser.add_argument("--out", type=Path, help="working folder (default: a temporary one, removed)")
    parser.add_argument("--max-steps", type=int, default=12)
    parser.add_argument("--features-only", type=Path, metavar="DIR", help="only write synthetic features to DIR")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.features_only:
        print(json.dumps(write_synthetic_features(args.bench, args.features_only), indent=2))
        return 0
    if args.out:
        report = run(args.bench, args.out, args.max_steps)
    else:
        with tempfile.TemporaryDirectory(prefix="wsi-llava-training-integration-") as tmp:
            report = run(args.bench, Path(tmp), args.max_steps)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
