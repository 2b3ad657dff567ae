"""`wsi-llava evaluate`: predict (run a model over WSI-Bench) | score (WSI-Precision/Relevance, accuracy, NLU).

    wsi-llava evaluate predict --model ID_OR_DIR --benchmark PATH_OR_HUB_ID --features-root DIR \\
        --out predictions.jsonl [--load-4bit] [--tasks ...] [--batch-size N] [--shard I/N]
    wsi-llava evaluate score PREDICTIONS --out DIR --judge offline|openai \\
        [--judge-base-url URL --judge-model NAME] [--workers N] [--dry-run] [--references PATH] \\
        [--metric-version official|strict] [--table2-grouping inferred|task_table] [--shard I/N]

Sharding (predict and score, like `wsi-llava tile`/`features`): --shard I/N, else RANK/WORLD_SIZE (torchrun,
accelerate), else a SLURM job array; each shard writes its own journal and the last to finish merges them.

Exit status: 0 done; 1 an input/config error (message, no traceback); 3 finished, but some items were not
done: predict, items that failed or had no slide inputs (listed in <out stem>.summary.json); score, judgements
that failed or input lines that were skipped (unreadable or malformed prediction lines, reference records;
listed in summary.json/summary.md); re-run to retry them; 130 interrupted (re-run to resume).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llm.options import add_llm_options, llm_settings_from_args
from evaluation.errors import EvaluationError
from evaluation.metric_versions import DEFAULT_METRIC_VERSION, METRIC_VERSION_NAMES
from evaluation.table2_grouping import DEFAULT_TABLE2_GROUPING, GROUPING_NAMES
from evaluation.predict import PREDICT_SEED
from modeling.generation_settings import add_dtype_option, add_generation_options
from modeling.slide_token_sources import SLIDE_TOKEN_SOURCES

EXIT_SOME_FAILED = 3                # finished, but some judgements failed or some input lines were skipped
MAX_PROBLEMS_SHOWN = 3              # skipped lines named on stderr (all of them are in summary.json)
EXIT_INTERRUPTED = 130


def _score_parser(sub) -> None:
    p = sub.add_parser("score", help="Score predictions: WSI-Precision/Relevance, accuracy, NLU metrics.",
                       description="Score a predictions file; writes scores.jsonl, summary.json, summary.md.")
    p.add_argument("predictions", type=Path, help="predictions .jsonl/.json (see evaluation/README.md)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--judge", choices=("offline", "openai"), required=True,
                   help="openai: any OpenAI-compatible LLM; offline: approximate embedding judge, no network")
    p.add_argument("--references", help="WSI-Bench file/folder/Hub id, for predictions keyed by id")
    p.add_argument("--tasks", nargs="+", help="only these tasks (file stems, metadata values or task ids)")
    add_llm_options(p, prefix="judge-", default_model=None, temperature=False,
                    title="LLM judge (--judge openai): any OpenAI-compatible endpoint; temperature is always 0")
    p.set_defaults(workers=4)
    p.add_argument("--metric-version", choices=METRIC_VERSION_NAMES, default=DEFAULT_METRIC_VERSION,
                   help="official (default): the official WSI-Metric scripts' prompts, messages, rounding and "
                        "skipping rules; strict: this project's stricter variant (evaluation/README.md)")
    p.add_argument("--table2-grouping", choices=GROUPING_NAMES, default=DEFAULT_TABLE2_GROUPING,
                   help="closed tasks in Table 2's accuracy cells: inferred (default; fits every published value, "
                        "labelled 'grouping inferred') or task_table")
    p.add_argument("--nlu-all-open", action="store_true",
                   help="NLU metrics for every open-ended task, not only report generation")
    p.add_argument("--dry-run", action="store_true",
                   help="match and count items, estimate judge requests and cost; write nothing")
    _add_shard_option(p, "open items")


def _predict_parser(sub) -> None:
    p = sub.add_parser("predict", help="Run a model over WSI-Bench items (resumable).",
                       description="Answer WSI-Bench questions with a WSI-LLaVA model; one JSONL row per item.")
    p.add_argument("--model", required=True, help="Hub id or local checkpoint folder")
    p.add_argument("--benchmark", required=True, help="WSI-Bench file, folder or Hub dataset id")
    p.add_argument("--features-root", type=Path, required=True,
                   help="folder holding the slide inputs named by each item's `image` (.pt or features .h5)")
    p.add_argument("--out", type=Path, required=True, help="predictions .jsonl (appended on re-runs)")
    p.add_argument("--load-4bit", action="store_true", help="load the language model in 4-bit (bitsandbytes)")
    p.add_argument("--tasks", nargs="+", help="only these tasks (file stems, metadata values or task ids)")
    p.add_argument("--split", help="only files of this split (e.g. test) when --benchmark is a folder/Hub id")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda:LOCAL_RANK when available, else cpu)")
    add_dtype_option(p)
    add_generation_options(p, seed_default=PREDICT_SEED,
                           seed_help=f"torch.manual_seed before every answer (default: {PREDICT_SEED}; a re-run "
                                     "reproduces the answers)")
    p.add_argument("--slide-token-source", choices=sorted(SLIDE_TOKEN_SOURCES),
                   help="slide-encoder hidden state pooled into the slide tokens of features .h5 inputs (default: "
                        "the model's, wsi-llava-readme; released .pt tokens are used as they are)")
    p.add_argument("--limit", type=int, help="stop after this many items (smoke tests)")
    p.add_argument("--batch-size", type=int, default=1,
                   help="questions answered together, across slides (default 1, one at a time as the official "
                        "loop; answers are the same token for token, greedy or seeded sampling)")
    _add_shard_option(p, "slides")


def _add_shard_option(p, what: str) -> None:
    p.add_argument("--shard", metavar="I/N",
                   help=f"do share I of N of the {what} (0-based); default: RANK/WORLD_SIZE (torchrun, accelerate), "
                        "else a SLURM job array (SLURM_ARRAY_TASK_ID ...), else everything. Shards write their own "
                        "journals; the last to finish merges them into one output")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsi-llava evaluate", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _predict_parser(sub)
    _score_parser(sub)
    return parser


def _score(args) -> int:
    from evaluation.judge_types import JudgeConfig
    from evaluation.scorer import ScoreConfig, run_scoring

    if args.judge == "openai":
        if not args.judge_model:
            raise EvaluationError("--judge openai needs --judge-model (the model name the endpoint serves, "
                                  "e.g. gpt-4o-2024-08-06).")
        judge = JudgeConfig(name="openai", workers=args.workers, metric_version=args.metric_version,
                            llm=llm_settings_from_args(args, prefix="judge-", temperature=0.0))
    else:
        judge = JudgeConfig(name="offline", workers=args.workers, embedding_model=args.judge_model,
                            metric_version=args.metric_version)
    config = ScoreConfig(predictions=args.predictions, out_dir=args.out, judge=judge, references=args.references,
                         tasks=args.tasks, dry_run=args.dry_run, nlu_all_open=args.nlu_all_open,
                         table2_grouping=args.table2_grouping,
                         shard=args.shard)
    result = run_scoring(config)
    if args.dry_run:
        print(json.dumps(result, indent=1))
        return 0
    if result.get("waiting"):       # a shard done with its share while others still judge theirs
        still = f" ({len(result['still_judging'])} shard(s) still judging)" if result["still_judging"] else ""
        print(f"shard {result['shard']}: judged {result['n_judged']} items; {result['n_waiting']} wait for other "
              f"shards{still}; the last shard to finish writes {args.out / 'summary.json'}")
        return 0
    overall, inputs = result["overall"], result["inputs"]
    cells = [f"{name} {block['mean']:.3f}" for name, block in (("WSI-P", overall["wsi_precision"]),
                                                              ("WSI-R", overall["wsi_relevance"]),
                                                              ("accuracy", overall["accuracy"]))
             if block and block["mean"] is not None]
    print(f"{overall['n_items']} items scored{' (APPROXIMATE judge)' if result['approximate'] else ''}, "
          f"metric version {result['metric_version']['name']}: {', '.join(cells) or 'no metric'}")
    print(f"skipped input lines {inputs['n_problems']}, unmatched rows {inputs['n_unmatched']}, references "
          f"without prediction {inputs['n_missing']}, failed judgements {len(result['failures'])}")
    print(f"wrote {args.out / 'scores.jsonl'}, {args.out / 'summary.json'}, {args.out / 'summary.md'}")
    if inputs["n_problems"]:
        shown = "; ".join(inputs["problems"][:MAX_PROBLEMS_SHOWN])
        more = inputs["n_problems"] - MAX_PROBLEMS_SHOWN
        print(f"{inputs['n_problems']} input line(s) skipped: {shown}" + (f"; {more} more" if more > 0 else "")
              + f" (all in {args.out / 'summary.json'}); fix them and re-run.", file=sys.stderr)
    if result["failures"]:
        print(f"{len(result['failures'])} judgement(s) failed; re-run the same command to retry them.",
              file=sys.stderr)
    return EXIT_SOME_FAILED if result["failures"] or inputs["n_problems"] else 0


def _predict(args) -> int:
    from evaluation.predict import PredictConfig, run_predictions
    from modeling.errors import ModelError
    from modeling.generation_settings import settings_from_args

    try:
        generation = settings_from_args(args)
    except ModelError as exc:
        raise EvaluationError(str(exc)) from exc
    config = PredictConfig(model=args.model, benchmark=args.benchmark, features_root=args.features_root,
                           out=args.out, load_4bit=args.load_4bit, tasks=args.tasks, split=args.split,
                           generation=generation, dtype=args.dtype, device=args.device, limit=args.limit,
                           slide_token_source=args.slide_token_source, max_question_chars=args.max_question_chars,
                           batch_size=args.batch_size, shard=args.shard)
    report = run_predictions(config)
    print(json.dumps(report, indent=1))
    unfinished = report["n_failed"] + report["n_missing_inputs"]
    if unfinished:
        print(f"{unfinished} item(s) not answered ({report['n_failed']} failed, {report['n_missing_inputs']} without "
              f"slide inputs): listed in {config.summary_path}; re-run to retry them.", file=sys.stderr)
    return EXIT_SOME_FAILED if unfinished else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from llm.errors import LLMError
    from wsi_bench.errors import BenchError

    try:
        return _predict(args) if args.command == "predict" else _score(args)
    except (EvaluationError, BenchError, LLMError) as exc:
        print(f"wsi-llava evaluate {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"wsi-llava evaluate {args.command}: interrupted; finished items are saved, re-run the same "
              "command to continue.", file=sys.stderr)
        return EXIT_INTERRUPTED
