"""`wsi-llava train`: run a training stage, check data leakage, or merge a trained checkpoint.

    wsi-llava train --stage {1,2,3} --config FILE.yaml [--section.key VALUE ...]
                    [--resume] [--push-to-hub REPO] [--skip-missing-features] [--dry-run]
    wsi-llava train --check-leakage PATH [PATH ...] [--split train] [--per-file] [--fail-on-leakage]
    wsi-llava train --merge CHECKPOINT OUT_DIR
    wsi-llava train --demo [DIR]          # synthetic data + all three stages of tiny.yaml on the CPU

Overrides use the config's sections, e.g. `--train.max_steps 10 --data.tasks grading,staging
--model.load_4bit true`. `--dry-run` checks the config, data and feature files and prints the plan
(nothing is trained). `--check-leakage` prints, as JSON, the slides and TCGA patients each pair of
the given files/folders shares (`--per-file` splits folders into their files).

Exit status: 0 done; 1 a config/data/training error (message, no traceback); 2 bad arguments;
3 leakage found with --fail-on-leakage; 130 interrupted (resume with --resume).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from training.errors import TrainingError

EXIT_LEAKAGE = 3
EXIT_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsi-llava train", description=__doc__,
                                     epilog="Config keys: see training/configs/*.yaml and training/README.md.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--config", help="a training YAML (training/configs/stage{1,2,3}.yaml, tiny.yaml)")
    mode.add_argument("--check-leakage", nargs="+", metavar="PATH",
                      help="WSI-Bench files/folders/Hub ids: report slides and patients shared between them")
    mode.add_argument("--merge", nargs=2, metavar=("CHECKPOINT", "OUT_DIR"),
                      help="write a standalone merged checkpoint of a stage 2-3 training checkpoint")
    mode.add_argument("--demo", nargs="?", const="runs/demo", metavar="DIR",
                      help="write a SYNTHETIC demo data set into DIR/data (default runs/demo) and run the three "
                           "stages of training/configs/tiny.yaml on it, chained, then merge (about a minute)")
    parser.add_argument("--stage", type=int, choices=(1, 2, 3), help="1 alignment, 2 projector, 3 instruction tuning")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output_dir")
    parser.add_argument("--push-to-hub", metavar="REPO", help="upload the final checkpoint + model card to REPO")
    parser.add_argument("--skip-missing-features", action="store_true",
                        help="leave out items without feature files (they are counted and reported)")
    parser.add_argument("--dry-run", action="store_true", help="check config, data and features; train nothing")
    parser.add_argument("--split", help="--check-leakage: only files of this split (e.g. train, test)")
    parser.add_argument("--per-file", action="store_true", help="--check-leakage: one set per file in folders")
    parser.add_argument("--fail-on-leakage", action="store_true", help="--check-leakage: exit 3 if any is found")
    return parser


def _leakage(args) -> int:
    from wsi_bench.files import bench_files
    from training.data import cross_task_leakage, load_items

    sources: list[str] = []
    for path in args.check_leakage:
        if args.per_file and Path(path).is_dir():
            sources += [str(f) for f in bench_files(path, args.split)]
        else:
            sources.append(path)
    if len(sources) < 2:
        raise TrainingError(f"--check-leakage needs at least two sets, got {sources} (use --per-file for a folder).")
    sets = {source: load_items(source, split=args.split)[0] for source in sources}
    report = cross_task_leakage(sets)
    print(json.dumps(report, indent=2))
    return EXIT_LEAKAGE if args.fail_on_leakage and not report["leak_free"] else 0


def _train(args, rest: list[str]) -> int:
    from training.config_loading import load_config, parse_overrides

    overrides = parse_overrides(rest)
    if args.resume:
        overrides.append(("train.resume_from_checkpoint", "last"))
    if args.push_to_hub:
        overrides.append(("hub.push_to_hub", args.push_to_hub))
    if args.skip_missing_features:
        overrides.append(("data.skip_missing_features", "true"))
    config = load_config(args.config, stage=args.stage, overrides=overrides)
    from training.run import prepare, run_stage

    prepared = prepare(config)
    if args.dry_run:
        plan = {"stage": config.stage, "stage_title": config.spec.title, "config": config.source,
                "trains": {g.name: list(g.patterns) for g in config.spec.trains}, "freezes": list(config.spec.freezes),
                "unused_sections": config.unused_sections(), "data": prepared.data.summary}
        print(json.dumps(plan, indent=2, default=str))
        return 0
    result = run_stage(config, prepared)
    print(json.dumps({"output_dir": str(result.output_dir), "metrics": result.metrics, "pushed": result.pushed},
                     indent=2, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not args.config:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if args.check_leakage:
            return _leakage(args)
        if args.demo:
            from training.demo import run_demo

            print(json.dumps(run_demo(Path(args.demo)), indent=2, default=str))
            return 0
        if args.merge:
            from training.merge_export import merge_checkpoint

            print(merge_checkpoint(*args.merge))
            return 0
        return _train(args, rest)
    except TrainingError as exc:
        print(f"wsi-llava train: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("wsi-llava train: interrupted; continue with --resume (checkpoints are in train.output_dir).",
              file=sys.stderr)
        return EXIT_INTERRUPTED
