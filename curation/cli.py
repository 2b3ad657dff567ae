"""`wsi-llava curate`: the curation pipeline from the command line (reports -> pairs -> review -> Hub).

    wsi-llava curate clean REPORTS... --store curation.sqlite [--method auto|sections|llm] [LLM options]
    wsi-llava curate enrich   --store S [--thin-below WORDS] [LLM options]
    wsi-llava curate generate --store S [--tasks grading,staging_choice] [LLM options]
    wsi-llava curate import FILES_OR_DIRS... --store S [--tasks ...] [--split test]
    wsi-llava curate review-stats --store S
    wsi-llava curate annotators --store S [--add NAME [--role lead] --as LEAD] [--blind on|off --as LEAD]
    wsi-llava curate assign --store S --k 2 --as LEAD [--annotators a,b,c] [--tasks ...]
    wsi-llava curate export --store S --out DIR --as LEAD
    wsi-llava curate push --store S --repo-id ORG/NAME --as LEAD [--export-dir DIR]

Every step is resumable: re-running it continues where a crash stopped, nothing is written twice, and
cached LLM replies are not paid for again. LLM steps take `--dry-run` (prints the estimate, spends
nothing). Steps write a summary JSON with every input's status. Exit codes: 0 done, 1 error (message on
stderr, no traceback), 2 usage error, 3 finished with failed items (listed in the summary; re-run to
retry them), 130 interrupted (re-run to continue).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile

from curation import cli_options as opts
from curation.errors import CurationError
from llm.errors import LLMError
from wsi_bench.errors import BenchError


def _print(value) -> None:
    print(json.dumps(value, indent=1, ensure_ascii=False, default=str))


def _store(args):
    from curation.store.review_store import ReviewStore

    return ReviewStore.open(args.store)


def _finish(summary, args, step: str) -> int:
    path = opts.summary_path(args, step)
    summary.write(path)
    shown = {"step": step, "counts": summary.counts, "summary": str(path)}
    if summary.estimate is not None or summary.dry_run:
        shown["estimate"] = summary.estimate or {"n_requests": 0}
    if summary.llm:
        shown["llm"] = summary.llm
    _print(shown)
    return 3 if summary.failed else 0


def cmd_clean(args) -> int:
    from curation.cleaning import run_cleaning
    from curation.reports import read_reports

    store = _store(args)
    problems: list[str] = []
    added = store.add_reports(read_reports(args.reports, problems)) if args.reports else None
    summary = run_cleaning(store, opts.llm_client(args), method=args.method, dry_run=args.dry_run,
                           progress=opts.progress(args))
    summary.items[:0] = [{"status": "failed", "error": p} for p in problems]
    if added:
        summary.items.insert(0, {"status": "reports", **added})
    return _finish(summary, args, "clean")


def cmd_enrich(args) -> int:
    from curation.enrichment import run_enrichment

    summary = run_enrichment(_store(args), opts.llm_client(args), dry_run=args.dry_run,
                             thin_below_words=args.thin_below, progress=opts.progress(args))
    return _finish(summary, args, "enrich")


def cmd_generate(args) -> int:
    from curation.generation import run_generation
    from curation.pair_checks import CheckSettings

    checks = CheckSettings(grounding_min_coverage=args.min_grounding, near_duplicate_similarity=args.near_duplicate)
    summary = run_generation(_store(args), opts.llm_client(args), tasks=opts.csv_list(args.tasks),
                             dry_run=args.dry_run, use_enrichment=not args.no_enrichment,
                             progress=opts.progress(args), check_settings=checks)
    return _finish(summary, args, "generate")


def cmd_import(args) -> int:
    from curation.bench_import import import_bench

    summary = import_bench(_store(args), args.sources, tasks=opts.csv_list(args.tasks), split=args.split)
    return _finish(summary, args, "import")


def cmd_review_stats(args) -> int:
    _print(_store(args).stats())
    return 0


def cmd_annotators(args) -> int:
    store = _store(args)
    if args.add:
        store.add_annotator(args.add, role=args.role, actor=args.as_)
    if args.blind:
        store.set_blind_mode(args.blind == "on", actor=args.as_)
    _print({"blind_mode": store.blind_mode(), "annotators": store.annotators()})
    return 0


def cmd_assign(args) -> int:
    store = _store(args)
    _print(store.assign(args.as_, args.k, annotators=opts.csv_list(args.annotators),
                        tasks=opts.csv_list(args.tasks)))
    return 0


def _export_settings(args):
    from curation.export import ExportSettings

    return ExportSettings(validation_fraction=args.validation_fraction, test_fraction=args.test_fraction,
                          seed=args.split_seed, name=args.name, licence=args.licence)


def cmd_export(args) -> int:
    from curation.export import export_dataset

    result = export_dataset(_store(args), args.out, args.as_, _export_settings(args),
                            repo_id=args.repo_id)
    summary = {k: v for k, v in result["summary"].items() if k in ("pairs", "splits", "patients", "excluded")}
    _print({"path": str(result["path"]), **summary})
    return 0


def cmd_push(args) -> int:
    from curation.export import export_dataset
    from curation.hub_push import push_export

    store = _store(args)
    actor = args.as_
    with tempfile.TemporaryDirectory(prefix="wsi-llava-export-") as scratch:
        folder = args.export_dir or f"{scratch}/export"
        if not args.export_dir or args.re_export:
            export_dataset(store, folder, actor, _export_settings(args), repo_id=args.repo_id)
        _print(push_export(store, folder, args.repo_id, actor, private=args.private))
    return 0


def _add_export_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--as", dest="as_", required=True, metavar="LEAD", help="the lead running it (role lead)")
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument("--split-seed", default="wsi-llava-curation", help="salt of the patient -> split hash")
    parser.add_argument("--name", default="WSI-Bench-style curated VQA", help="dataset name on the card")
    parser.add_argument("--licence", default="other", help="licence id for the card's YAML header")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsi-llava curate", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="STEP")

    def step(name: str, func, help_text: str, llm: bool = False, run: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        opts.add_store(p)
        if run:
            opts.add_run_options(p)
        if llm:
            opts.add_llm(p)
        p.set_defaults(func=func)
        return p

    p = step("clean", cmd_clean, "Add reports to the store and clean them (section parser, LLM for the rest).",
             llm=True, run=True)
    p.add_argument("reports", nargs="*", help="JSONL/CSV files (slide id + text) or folders of <slide id>.txt")
    p.add_argument("--method", choices=("auto", "sections", "llm"), default="auto")
    p = step("enrich", cmd_enrich, "Write the WHO-guided morphology expected for each diagnosis (stored as inferred).",
             llm=True, run=True)
    p.add_argument("--thin-below", type=int, metavar="WORDS", help="only reports with fewer cleaned words")
    p = step("generate", cmd_generate, "Generate VQA pairs for the WSI-Bench tasks and run the automatic checks.",
             llm=True, run=True)
    p.add_argument("--tasks", help="comma-separated task ids, file stems or metadata names (default: all 16)")
    p.add_argument("--no-enrichment", action="store_true", help="do not show the enrichment to the generator")
    p.add_argument("--min-grounding", type=float, default=0.6, help="grounding check: share of answer words")
    p.add_argument("--near-duplicate", type=float, default=0.9, help="near-duplicate check: similarity threshold")
    p = step("import", cmd_import, "Import released WSI-Bench files (LLaVA JSON or official JSONL) for review.",
             run=True)
    p.add_argument("sources", nargs="+", help="WSI-Bench files or folders")
    p.add_argument("--tasks", help="only these tasks (comma-separated)")
    p.add_argument("--split", help="only files of this split (e.g. test)")
    step("review-stats", cmd_review_stats, "Print JSON counts per status and task, agreement and progress.")
    p = step("annotators", cmd_annotators, "List annotators; add one (the first needs no lead) or set blind mode.")
    p.add_argument("--add", metavar="NAME")
    p.add_argument("--role", choices=("annotator", "lead"), default="annotator")
    p.add_argument("--blind", choices=("on", "off"))
    p.add_argument("--as", dest="as_", metavar="LEAD", help="the lead doing it (not needed for the first one)")
    p = step("assign", cmd_assign, "Assign every pending pair to k annotators (balanced). Lead only.")
    p.add_argument("--k", type=int, required=True, help="annotators per pair")
    p.add_argument("--as", dest="as_", required=True, metavar="LEAD")
    p.add_argument("--annotators", help="comma-separated names (default: every annotator with role annotator)")
    p.add_argument("--tasks", help="only pairs of these tasks")
    p = step("export", cmd_export, "Export accepted/edited pairs: Parquet, LLaVA JSON, JSONL and a card. Lead only.")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--repo-id", help="Hub id named in the card's loading example")
    _add_export_options(p)
    p = step("push", cmd_push, "Export (or take --export-dir) and push the dataset to the Hub. Lead only.")
    p.add_argument("--repo-id", required=True, metavar="ORG/NAME")
    p.add_argument("--export-dir", metavar="DIR", help="push this export folder instead of exporting anew")
    p.add_argument("--re-export", action="store_true", help="export into --export-dir first")
    p.add_argument("--private", action="store_true")
    _add_export_options(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return int(args.func(args) or 0)
    except (CurationError, BenchError, LLMError) as exc:
        print(f"wsi-llava curate {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"wsi-llava curate {args.command}: interrupted; run the same command again to continue.",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
