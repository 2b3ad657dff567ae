"""Parity of `wsi-llava evaluate score` (default = `--metric-version official`) with the official WSI-Metric
scripts and NLP_Metric.py, on the same WSI-Bench items, against the same deterministic loopback judge.

    .venv/bin/python benchmarks/metric_parity.py --official-dir CHECKOUT \
        (--official-python PY | --make-venv DIR) [--bench ../shared/wsi-bench-sample] [--per-task 3] \
        [--report-items 5] [--out DIR] [--failure-paths]

CHECKOUT is the user's checkout of github.com/yu5-kim/WSI-LLaVA at f9ac921 (its `WSI-Metric/` and
`NLP_Metric.py`; nothing of it is copied into this project, nothing in it is edited). PY is a Python with
the official scripts' requirements (openai, pandas, nltk, rouge, tqdm); `--make-venv DIR` creates one
with pip. Steps:
1. predictions for `--per-task` items of every open task (and `--report-items` reports): the reference
   itself, its first half, another item's reference, the reference plus an invented sentence, an unrelated
   text, blank, whitespace (cycled);
2. a deterministic judge (tests/helpers/deterministic_judge.py) behind the loopback OpenAI-compatible
   server (tests/helpers/openai_server.py), refusing temperature/seed/max_tokens as gpt-5-mini (the
   official scripts' default judge) does;
3. the official scripts (benchmarks/metric_parity_official.py, run with PY; its run-time patches are
   listed in the verdict) on the official input formats, item ids `<task>_<id>` and `metadata` = task;
4. `evaluate score PREDICTIONS --references BENCH --judge openai` WITHOUT --metric-version (the default);
5. prints one JSON verdict: prompts identical, the (system, user) requests of both sides, per-item and
   overall WSI-P / WSI-R / BLEU-1..4 / ROUGE-L / METEOR (number compared, mismatches, max abs difference),
   per task, and `parity` (everything equal). `--failure-paths` adds items whose judge replies are fenced,
   Python literals, prose or string scores: documented deviations, reported apart (`deviations`).
Exit status 0 when parity holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation import official_prompts  # noqa: E402
from evaluation.cli import main as evaluate_main  # noqa: E402
from evaluation.nltk_resources import FALLBACK_ABBREVIATIONS, nltk_data_root, wordnet_reader  # noqa: E402
from wsi_bench.files import read_benchmark  # noqa: E402
from tests.helpers.deterministic_judge import judge_reply  # noqa: E402
from tests.helpers.openai_server import OpenAIStandIn  # noqa: E402

HERE = Path(__file__).resolve().parent
KEY_ENV = "METRIC_PARITY_JUDGE_KEY"
JUDGE_MODEL = "gpt-5-mini"
OFFICIAL_REQUIREMENTS = ("openai", "pandas", "nltk", "rouge", "tqdm")
KINDS = ("exact", "partial", "other_item", "superset", "unrelated", "blank", "whitespace")
FAILURE_KINDS = ("fenced_reply", "python_reply", "garbage_reply", "string_scores")
MARKER = {"fenced_reply": "[[JUDGE:FENCED]]", "python_reply": "[[JUDGE:PYTHON]]",
          "garbage_reply": "[[JUDGE:GARBAGE]]", "string_scores": "[[JUDGE:STRSCORE]]"}
INVENTED = "Additionally, the patient enjoys gardening on weekends."
UNRELATED = "Paris is the capital of France. The weather today is sunny and warm."
NLU_KEYS = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "meteor")
NLU_OFFICIAL = {"bleu_1": "BLEU-1", "bleu_2": "BLEU-2", "bleu_3": "BLEU-3", "bleu_4": "BLEU-4",
                "rouge_l": "ROUGE-L", "meteor": "METEOR"}
OFFICIAL_FILES = tuple(f"WSI-Metric/{name}.py" for name in (
    "WSI-Precision_stage1_extract_claims", "WSI-Precision_stage2_evaluate_claims", "WSI-Precision_stage3_calculate_scores",
    "WSI-Relevance_stage_1", "WSI-Relevance_stage_2", "WSI-Relevance_stage_3")) + ("NLP_Metric.py",)
OFFICIAL_PROMPT_OF = {"P1": "REFERENCE_CLAIMS_SYSTEM", "R1": "PREDICTION_CLAIMS_SYSTEM",
                      "P2": "PRECISION_SCORING_SYSTEM", "R2": "RELEVANCE_SCORING_SYSTEM"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- items and predictions -------------------------------------------------------------------------------
def _first_half(text: str) -> str:
    words = text.split()
    return " ".join(words[: max(1, len(words) // 2)]) + "."


def _open_items(bench: str) -> dict[str, list]:
    by_task: dict[str, list] = {}
    for item in read_benchmark(bench):
        if item.answer_format == "open":
            by_task.setdefault(item.task, []).append(item)
    return by_task


def make_items(bench: str, per_task: int, report_items: int) -> list[dict]:
    """[{item, kind, prediction}] for the first items of every open task, kinds cycled."""
    by_task = _open_items(bench)
    tasks = sorted(by_task)
    chosen = []
    for t, task in enumerate(tasks):
        n = report_items if task == "report_generation" else per_task
        other = by_task[tasks[(t + 1) % len(tasks)]]
        for j, item in enumerate(by_task[task][:n]):
            kind = KINDS[(t + j) % len(KINDS)]
            ref = item.answer
            prediction = {"exact": ref, "partial": _first_half(ref), "other_item": other[j % len(other)].answer,
                          "superset": f"{ref} {INVENTED}", "unrelated": UNRELATED, "blank": "",
                          "whitespace": "   "}[kind]
            chosen.append({"item": item, "kind": kind, "prediction": prediction})
    return chosen


def failure_items(bench: str) -> list[dict]:
    """Items whose judge replies the scripts cannot read (fenced, Python literal, prose, string scores)."""
    items = _open_items(bench)["report_generation"]
    return [{"item": item, "kind": kind, "prediction": f"{item.answer} {MARKER[kind]}"}
            for kind, item in zip(FAILURE_KINDS, items[::-1])]


def official_id(item) -> str:
    return f"{item.task}_{item.question_id}"


def write_inputs(chosen: list[dict], folder: Path) -> None:
    """The official scripts' input files, in the formats they read (metadata = our task id)."""
    import csv

    folder.mkdir(parents=True, exist_ok=True)
    records = [{"id": official_id(c["item"]), "image": c["item"].image, "metadata": c["item"].task,
                "conversations": c["item"].conversations} for c in chosen]
    (folder / "input_qa_pairs.json").write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
    with open(folder / "model_outputs.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["question_id", "metadata", "model_output"])
        for c in chosen:
            writer.writerow([official_id(c["item"]), c["item"].task, c["prediction"]])
    truth = {official_id(c["item"]): {"metadata": c["item"].task, "text": _raw_answer(c["item"])} for c in chosen}
    (folder / "ground_truth_data.json").write_text(json.dumps(truth, ensure_ascii=False, indent=1), encoding="utf-8")
    with open(folder / "nlu_input.jsonl", "w", encoding="utf-8") as f:
        for c in chosen:
            if c["item"].task == "report_generation":
                f.write(json.dumps({"question_id": official_id(c["item"]), "T-answer": _raw_answer(c["item"]),
                                    "Output": c["prediction"]}, ensure_ascii=False) + "\n")


def _raw_answer(item) -> str:
    """The first gpt turn as released (the official stage 1 reads it unstripped)."""
    return next((turn["value"] for turn in item.conversations if turn.get("from") == "gpt"), item.answer)


# -- the two sides -----------------------------------------------------------------------------------------
def official_python(args) -> str:
    if args.official_python:
        return args.official_python
    venv = Path(args.make_venv)
    python = venv / "bin" / "python"
    if not python.is_file():
        log(f"creating {venv} with {', '.join(OFFICIAL_REQUIREMENTS)}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *OFFICIAL_REQUIREMENTS], check=True)
    return str(python)


def run_official(args, url: str, work: Path) -> dict:
    wordnet = wordnet_reader() is not None            # lays Debian's WordNet out under nltk_data_root()
    command = [official_python(args), str(HERE / "metric_parity_official.py"), "--official-dir",
               str(args.official_dir), "--inputs", str(work / "official_inputs"), "--outputs",
               str(work / "official_outputs"), "--judge-url", url, "--model", JUDGE_MODEL,
               "--abbreviations", ",".join(sorted(FALLBACK_ABBREVIATIONS))]
    if wordnet:
        command += ["--nltk-data", str(nltk_data_root())]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the official side failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads((work / "official_outputs" / "official_results.json").read_text(encoding="utf-8"))


def run_ours(chosen: list[dict], args, url: str, work: Path) -> tuple[int, dict, dict]:
    predictions = work / "predictions.jsonl"
    predictions.write_text("".join(json.dumps({"question_id": c["item"].question_id, "task": c["item"].source_task_name,
                                               "prediction": c["prediction"]}, ensure_ascii=False) + "\n"
                                   for c in chosen), encoding="utf-8")
    out = work / "ours"
    argv = ["score", str(predictions), "--references", str(args.bench), "--out", str(out), "--judge", "openai",
            "--judge-base-url", url, "--judge-model", JUDGE_MODEL, "--judge-api-key-env", KEY_ENV, "--workers", "4"]
    with contextlib.redirect_stdout(sys.stderr):        # stdout carries the verdict only
        code = evaluate_main(argv)                      # no --metric-version: the default must be official
    rows = {}
    for line in (out / "scores.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        rows[(row["task"], row["question_id"])] = row
    return code, rows, json.loads((out / "summary.json").read_text(encoding="utf-8"))


# -- comparison -----------------------------------------------------------------------------------------------
def _entry(aggregated: dict | None, qid: str):
    """An official stage-3 per-entry score (None = not in the averages), or "absent"."""
    entries = (aggregated or {}).get("per_entry_scores") or {}
    if qid not in entries:
        return "absent"
    return next(iter(entries[qid].values()))


def _equal(a, b, tolerance: float = 1e-9) -> bool:
    if a is None or b is None or isinstance(a, str) or isinstance(b, str):
        return (a in (None, "absent")) and (b in (None, "absent"))
    return abs(a - b) <= tolerance


def _compare(pairs: list[tuple[str, object, object]], tolerance: float = 1e-9) -> dict:
    """pairs of (label, official, ours) -> counts, mismatches, the largest difference between two numbers."""
    numbers = [abs(a - b) for _, a, b in pairs if isinstance(a, (int, float)) and isinstance(b, (int, float))]
    bad = [{"item": label, "official": a, "ours": b} for label, a, b in pairs if not _equal(a, b, tolerance)]
    return {"n_compared": len(pairs), "n_scored_official": sum(isinstance(a, (int, float)) for _, a, _ in pairs),
            "n_scored_ours": sum(isinstance(b, (int, float)) for _, _, b in pairs), "mismatches": len(bad),
            "max_abs_diff": max(numbers, default=0.0), "mismatched": bad[:20]}


def compare_metrics(chosen: list[dict], official: dict, rows: dict, summary: dict) -> dict:
    result = {}
    for metric, key in (("wsi_precision", "precision"), ("wsi_relevance", "relevance")):
        pairs = [(official_id(c["item"]), _entry(official[key], official_id(c["item"])),
                  (rows[(c["item"].task, c["item"].question_id)][metric] or {}).get("score")) for c in chosen]
        overall_official = (official[key] or {}).get("overall_average")
        overall_ours = summary["overall"][metric]["mean"]
        per_task = [(task, value, (summary["tasks"].get(task, {}).get(metric) or {}).get("mean"))
                    for task, value in ((official[key] or {}).get("type_average_scores") or {}).items()]
        result[metric] = {"overall": {"official": overall_official, "ours": overall_ours,
                                      "equal": _equal(overall_official, overall_ours)},
                          "per_item": _compare(pairs), "per_task": _compare(per_task)}
    per_item, nlu_official = [], official["nlu"]
    for c in chosen:
        if c["item"].task != "report_generation":
            continue
        theirs = nlu_official["per_item"].get(official_id(c["item"]))
        ours = rows[(c["item"].task, c["item"].question_id)]["nlu"]
        for name in NLU_KEYS:
            per_item.append((f"{official_id(c['item'])}.{name}", None if theirs is None else theirs[name],
                             None if ours is None else ours[name]))
    averages = nlu_official["averages"] or {}
    ours_nlu = summary["tasks"].get("report_generation", {}).get("nlu") or {}
    mean_pairs = [(name, averages.get(NLU_OFFICIAL[name]), ours_nlu.get(name)) for name in NLU_KEYS]
    result["nlu"] = {"per_item": _compare(per_item, 1e-12), "averages": _compare(mean_pairs, 1e-12),
                     "n_items": {"official": averages.get("num_samples"), "ours": ours_nlu.get("n")}}
    return result


def _for_blank_prediction(user: str) -> bool:
    """A request only the official scripts send, for a blank prediction: stage 2 of WSI-Precision judging
    the empty CSV cell (pandas: `nan`) or the whitespace; WSI-Relevance claims of whitespace, and stage 2
    with its empty claim list. Our official version scores WSI-P 0 without a call and excludes WSI-R."""
    return (not user.strip() or re.search(r" \n pathology dialogue responses:(nan|\s*)\Z", user) is not None
            or user.startswith("claims:[] \n ground truth answer:"))


def compare_requests(official: list[dict], ours: list[dict]) -> dict:
    """The (system, user) messages each side sent (refused requests left out: they are re-sent)."""
    def messages(requests):
        return {(r["messages"][0]["content"], r["messages"][1]["content"]) for r in requests}

    a, b = messages(official), messages(ours)
    official_only = sorted(u for _, u in a - b)
    other = [u[:160] for u in official_only if not _for_blank_prediction(u)]
    return {"distinct_official": len(a), "distinct_ours": len(b), "ours_all_sent_by_official": b <= a,
            "official_only_for_blank_predictions": len(official_only) - len(other),
            "official_only_other": other[:5], "only_ours": [u[:160] for _, u in sorted(b - a)][:5],
            "identical_apart_from_blank_predictions": b <= a and not other,
            "ours_with_response_format": sum(1 for r in ours if "response_format" in r)}


def deviations(chosen: list[dict], official: dict, rows: dict) -> list[dict]:
    found = []
    for c in chosen:
        row, qid = rows[(c["item"].task, c["item"].question_id)], official_id(c["item"])
        found.append({"item": qid, "kind": c["kind"],
                      "official": {"wsi_precision": _entry(official["precision"], qid),
                                   "wsi_relevance": _entry(official["relevance"], qid)},
                      "ours": {m: {"status": row[m]["status"], "score": row[m]["score"]}
                               for m in ("wsi_precision", "wsi_relevance")}})
    return found


def run_pass(chosen: list[dict], args, work: Path) -> dict:
    """Both sides on `chosen`, against one fresh deterministic judge; the requests each side sent."""
    for stale in ("official_outputs", "ours"):     # both sides resume from earlier outputs: start afresh
        shutil.rmtree(work / stale, ignore_errors=True)
    write_inputs(chosen, work / "official_inputs")
    with OpenAIStandIn(responder=judge_reply, reasoning_model=True, model=JUDGE_MODEL) as server:
        log(f"official scripts on {len(chosen)} items against {server.url}")
        official = run_official(args, server.url, work)
        n_official = server.request_count
        log("evaluate score (default metric version) on the same items")
        code, rows, summary = run_ours(chosen, args, server.url, work)
        requests = list(server.requests)
    refused = {"temperature", "seed", "max_tokens"}
    return {"official": official, "code": code, "rows": rows, "summary": summary,
            "official_requests": [r for r in requests[:n_official] if not refused & set(r)],
            "ours_requests": [r for r in requests[n_official:] if not refused & set(r)]}


def _parity(prompts: dict, requests: dict, run: dict, metrics: dict) -> bool:
    """Same prompts, our requests all the scripts' (theirs beyond ours only for blank predictions), no
    stage error or failed judgement, and every per-item, per-task and overall value equal."""
    return (all(prompts.values()) and requests["identical_apart_from_blank_predictions"]
            and requests["distinct_ours"] > 0 and not run["official"]["stage_errors"] and run["code"] == 0
            and all(metrics[m]["overall"]["equal"] and metrics[m]["per_item"]["mismatches"] == 0
                    and metrics[m]["per_task"]["mismatches"] == 0 for m in ("wsi_precision", "wsi_relevance"))
            and metrics["nlu"]["per_item"]["mismatches"] == 0 and metrics["nlu"]["averages"]["mismatches"] == 0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--official-dir", required=True, type=Path, help="checkout of yu5-kim/WSI-LLaVA at f9ac921")
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--official-python", help="a Python with openai, pandas, nltk, rouge, tqdm")
    source.add_argument("--make-venv", help="create (or reuse) a venv here with those packages")
    ap.add_argument("--bench", default=str(HERE.parents[2] / "shared" / "wsi-bench-sample"),
                    help="WSI-Bench folder (default: ../shared/wsi-bench-sample beside the checkout)")
    ap.add_argument("--per-task", type=int, default=3)
    ap.add_argument("--report-items", type=int, default=5)
    ap.add_argument("--out", type=Path, help="work folder (default: a new temporary folder, kept)")
    ap.add_argument("--failure-paths", action="store_true",
                    help="then score, apart, items whose judge replies the scripts cannot read")
    args = ap.parse_args(argv)
    for relative in OFFICIAL_FILES:
        if not (args.official_dir / relative).is_file():
            raise SystemExit(f"{args.official_dir}: no {relative}; pass a checkout of yu5-kim/WSI-LLaVA (f9ac921).")
    work = args.out or Path(tempfile.mkdtemp(prefix="metric-parity-"))
    os.environ[KEY_ENV] = "sk-loopback-not-a-key"
    started = time.monotonic()
    chosen = make_items(args.bench, args.per_task, args.report_items)
    run = run_pass(chosen, args, work / "parity")
    official, summary = run["official"], run["summary"]
    prompts = {name: official["prompts"][key] == getattr(official_prompts, name)
               for key, name in OFFICIAL_PROMPT_OF.items()}
    metrics = compare_metrics(chosen, official, run["rows"], summary)
    request_check = compare_requests(run["official_requests"], run["ours_requests"])
    parity = _parity(prompts, request_check, run, metrics)
    failures = None
    if args.failure_paths:
        broken = failure_items(args.bench)
        second = run_pass(broken, args, work / "failure_paths")
        failures = {"note": "documented deviations (evaluation/README.md), not part of `parity`: the scripts drop "
                            "these items silently (None), ours reads the judge's answer or fails and lists it",
                    "items": deviations(broken, second["official"], second["rows"]),
                    "ours_failures_listed": len(second["summary"]["failures"])}
    kinds: dict[str, int] = {}
    for c in chosen:
        kinds[c["kind"]] = kinds.get(c["kind"], 0) + 1
    verdict = {
        "parity": parity,
        "official": {"dir": str(args.official_dir), "commit": _commit(args.official_dir),
                     "sha256": {rel: hashlib.sha256((args.official_dir / rel).read_bytes()).hexdigest()[:16]
                                for rel in OFFICIAL_FILES},
                     "expected_commit": official_prompts.OFFICIAL_COMMIT, "python": official["python"],
                     "patches": official["patches"], "stage_errors": official["stage_errors"]},
        "ours": {"command": "wsi-llava evaluate score PREDICTIONS --references BENCH --judge openai --judge-model "
                            f"{JUDGE_MODEL} (no --metric-version)", "exit_code": run["code"],
                 "metric_version": summary["metric_version"]["name"],
                 "request_adjustments": summary["judge_stats"].get("request_adjustments"),
                 "n_excluded_listed": len(summary.get("excluded") or []), "n_failures": len(summary["failures"])},
        "judge": "tests/helpers/deterministic_judge.py behind a loopback server refusing temperature/seed/max_tokens "
                 f"as {JUDGE_MODEL} does",
        "items": {"n": len(chosen), "bench": str(args.bench), "kinds": kinds},
        "prompts_identical": prompts, "requests": request_check, **metrics, "deviations": failures,
        "work_dir": str(work), "elapsed_s": round(time.monotonic() - started, 1),
    }
    print(json.dumps(verdict, indent=1, ensure_ascii=False))
    return 0 if parity else 1


def _commit(folder: Path) -> str | None:
    done = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


if __name__ == "__main__":
    sys.exit(main())
