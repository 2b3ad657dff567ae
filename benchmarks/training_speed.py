"""Training throughput and peak memory of each stage with the tiny config. JSON on stdout.

Each stage runs `training/configs/tiny.yaml` (built-in random demo model: 2-layer LLaMA, 1-layer LongNet,
576 slide tokens; tiny random BERT for stage 1) in its own subprocess, so peak memory is that stage's
alone, on the items of ../shared/wsi-bench-train-small with SYNTHETIC features (random, written once to
a temporary folder by benchmarks/training_integration.py): stage 1 on tile-feature .h5 files, stages 2
and 3 on released-format 576 x 1024 slide-token .pt files, and stage 3 once more with QLoRA (4-bit).
No evaluation and no checkpoint inside the timed window.

Reported per stage: optimizer steps/s and examples/s over the steps after the first (warm-up), the
process CPU seconds per step (all threads; less sensitive than wall time to other work on a shared
machine), the effective batch, seconds to build the model, peak resident memory of the process (ru_maxrss, MiB;
includes the Python/torch runtime) and, on CUDA, peak allocated GPU memory. The machine's load average
at the end is printed too: on a shared machine, other work slows every number.

Run: `python benchmarks/training_speed.py [--steps 20] [--batch 4] [--threads 1] [--bench ../shared/wsi-bench-train-small]`
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

VARIANTS = {"1": (1, "h5", False), "2": (2, "pt", False), "3": (3, "pt", False), "3-qlora": (3, "pt", True)}


def _one(variant: str, features: Path, bench: str, steps: int, batch: int, out: Path) -> dict:
    import torch
    from transformers import TrainerCallback

    from training.config_loading import load_config
    from training.run import build_trainer, prepare

    stage, kind, qlora = VARIANTS[variant]
    overrides = [("data.train", bench), ("data.reports_file", str(features / "reports.jsonl")),
                 ("data.features_root", str(features / kind)), ("data.val_fraction", "0"),
                 ("train.eval_strategy", "no"), ("train.max_steps", str(steps)), ("train.save_steps", str(10 * steps)),
                 ("train.effective_batch_size", str(batch)), ("train.per_device_batch_size", str(min(batch, 2))),
                 ("train.output_dir", str(out)), ("train.tensorboard", "false"), ("model.load_4bit", str(qlora))]
    config = load_config(ROOT / "training/configs/tiny.yaml", stage=stage, overrides=overrides)
    started = time.perf_counter()
    trainer, stage_model = build_trainer(config, prepare(config))
    build_s = time.perf_counter() - started
    stamps: list[float] = []
    cpu_stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())
            cpu_stamps.append(time.process_time())

    trainer.add_callback(Clock())
    trainer.train()
    timed = len(stamps) - 1
    seconds = stamps[-1] - stamps[0]
    result = {"stage": variant, "inputs": kind, "steps_timed": timed, "effective_batch": batch,
              "steps_per_s": round(timed / seconds, 3), "examples_per_s": round(timed * batch / seconds, 2),
              "cpu_s_per_step": round((cpu_stamps[-1] - cpu_stamps[0]) / timed, 3),
              "build_s": round(build_s, 2), "trained_parameters": stage_model.parameter_counts(),
              "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if torch.cuda.is_available():
        result["peak_cuda_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", default=str(ROOT.parent / "shared" / "wsi-bench-train-small"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=4, help="effective batch (per-device 2 x accumulation)")
    parser.add_argument("--stages", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads per stage (1: steadier numbers on a shared machine)")
    parser.add_argument("--one", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--features", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.one:                                   # the child process: one stage, one JSON line
        import torch

        torch.set_num_threads(args.threads)
        with tempfile.TemporaryDirectory() as out:
            print(json.dumps(_one(args.one, args.features, args.bench, args.steps, args.batch, Path(out))))
        return 0
    from training_integration import write_synthetic_features

    with tempfile.TemporaryDirectory(prefix="wsi-llava-training-speed-") as tmp:
        features = Path(tmp)
        written = write_synthetic_features(args.bench, features)
        results = []
        for variant in args.stages:
            child = subprocess.run([sys.executable, __file__, "--one", variant, "--features", str(features),
                                    "--bench", args.bench, "--steps", str(args.steps), "--batch", str(args.batch),
                                    "--threads", str(args.threads)],
                                   capture_output=True, text=True, cwd=ROOT, check=False)
            if child.returncode != 0:
                results.append({"stage": variant, "error": child.stderr.strip().splitlines()[-1:]})
                continue
            results.append(json.loads(child.stdout.strip().splitlines()[-1]))
    import torch

    print(json.dumps({"config": "training/configs/tiny.yaml", "features": "synthetic (random)", "written": written,
                      "load_average_1_5_15min": [round(x, 2) for x in os.getloadavg()],
                      "device": "cuda" if torch.cuda.is_available() else "cpu", "torch_threads": args.threads,
                      "machine": platform.platform(), "python": platform.python_version(), "results": results},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
