"""Benchmark of `evaluate score`: judge throughput vs --workers, a fully cached re-run, the offline judge.

    .venv/bin/python benchmarks/evaluation_scoring.py [--sample ../shared/wsi-bench-sample] [--quick]

Prints one JSON object on stdout (progress on stderr):
- throughput: open-ended items scored through the LLM judge (default metric version, official) against a
  loopback OpenAI-compatible server (tests/helpers/openai_server.py) answering every request after 100 ms
  with the deterministic judge (tests/helpers/deterministic_judge.py), at 1, 8 and 32 workers
  (4 judge requests per item), with the speed-up over 1 worker;
- cached_rerun: 3,000 items (cycled from the sample, all 16 task files) scored once to fill the judge
  cache, then re-scored (a) from the reply cache alone (scores.jsonl deleted) and (b) reusing the
  finished rows: seconds and requests sent (must be 0);
- offline_judge: the sample's open-ended items scored with the offline judge, each reference against
  itself and against an unrelated answer (the reference of an item of another task).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llm.client import LLMSettings  # noqa: E402
from wsi_bench.files import read_benchmark  # noqa: E402
from evaluation.judge_types import JudgeConfig  # noqa: E402
from evaluation.scorer import ScoreConfig, run_scoring  # noqa: E402
from tests.helpers.deterministic_judge import judge_reply  # noqa: E402
from tests.helpers.openai_server import OpenAIStandIn  # noqa: E402

KEY_ENV = "BENCH_JUDGE_KEY"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fake_judge(request: dict) -> str:
    """The deterministic WSI-Metric judge of the tests (either metric version's messages): claims are
    sentences, scored by their share of content words found in the other text."""
    reply = judge_reply(request)
    assert isinstance(reply, str), "the benchmark's requests are all WSI-Metric prompts"
    return reply


def stand_in(**kwargs) -> OpenAIStandIn:
    """The loopback judge with TCP_NODELAY: without it every response waits ~40 ms for a delayed ACK
    (headers and body go out as two small writes), which would be measured as judge overhead."""
    server = OpenAIStandIn(**kwargs)
    server._server.RequestHandlerClass.disable_nagle_algorithm = True
    return server


def rows_from(items, n: int, prediction=lambda item, i: item.answer, unique: bool = False) -> list[dict]:
    """n prediction rows cycling over `items`; `unique` appends a numbered sentence to every open item's
    reference and prediction so that no two rows share a judge request (no cache hits inside a run)."""
    rows = []
    for i in range(n):
        item = items[i % len(items)]
        tag = f" This is case {i}." if unique and item.answer_format == "open" else ""
        rows.append({"question_id": f"{item.question_id}#{i}", "image": item.image, "task": item.source_task_name,
                     "capability": item.capability, "question": item.question, "reference": item.answer + tag,
                     "prediction": prediction(item, i) + tag, "model": "bench", "settings": {}})
    return rows


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def llm_config(server, preds: Path, out: Path, workers: int, cache: Path | None = None) -> ScoreConfig:
    judge = JudgeConfig(name="openai", workers=workers, llm=LLMSettings(
        base_url=server.url, model="stand-in", api_key_env=KEY_ENV, cache_path=str(cache) if cache else None,
        backoff_initial_s=0.01, backoff_max_s=0.05))
    return ScoreConfig(predictions=preds, out_dir=out, judge=judge, progress_every_s=1e9)


def throughput(items, tmp: Path, quick: bool) -> list[dict]:
    open_items = [i for i in items if i.answer_format == "open" and i.task != "report_generation"]
    results = []
    with stand_in(responder=fake_judge, latency_s=0.1) as server:
        warm = write_rows(tmp / "warm.jsonl", rows_from(open_items, 1, unique=True))
        run_scoring(llm_config(server, warm, tmp / "warm", 1), emit=lambda m: None)   # imports, SDK start-up
        for workers in (1, 8, 32):
            n_items = (4 if quick else 12) * workers if workers > 1 else (4 if quick else 12)
            preds = write_rows(tmp / f"tp{workers}.jsonl", rows_from(open_items, n_items, unique=True))
            before = server.request_count
            server.max_in_flight = 0
            started = time.perf_counter()
            summary = run_scoring(llm_config(server, preds, tmp / f"tp{workers}", workers), emit=lambda m: None)
            seconds = time.perf_counter() - started
            requests = server.request_count - before
            results.append({"workers": workers, "items": n_items, "requests": requests, "seconds": round(seconds, 2),
                            "ideal_seconds": round(requests * 0.1 / workers, 2),
                            "items_per_s": round(n_items / seconds, 2), "requests_per_s": round(requests / seconds, 1),
                            "max_in_flight": server.max_in_flight, "failures": len(summary["failures"])})
            log(f"throughput: {results[-1]}")
    base = results[0]["items_per_s"]
    for row in results:
        row["speedup_vs_1"] = round(row["items_per_s"] / base, 2)
        row["ideal_speedup"] = row["workers"]
    return results


def cached_rerun(items, tmp: Path, n_items: int) -> dict:
    preds = write_rows(tmp / "cached.jsonl", rows_from(items, n_items, unique=True))
    out, cache = tmp / "cached", tmp / "judge_cache.sqlite"
    with stand_in(responder=fake_judge) as server:
        started = time.perf_counter()
        first = run_scoring(llm_config(server, preds, out, 32, cache), emit=log)
        fill_s = time.perf_counter() - started
        sent = server.request_count
        (out / "scores.jsonl").unlink()
        started = time.perf_counter()
        from_cache = run_scoring(llm_config(server, preds, out, 32, cache), emit=log)
        cache_s = time.perf_counter() - started
        started = time.perf_counter()
        reused = run_scoring(llm_config(server, preds, out, 32, cache), emit=log)
        reuse_s = time.perf_counter() - started
        assert from_cache["overall"] == first["overall"] == reused["overall"]
        return {"items": n_items, "open_items": first["overall"]["wsi_precision"]["n_items"],
                "first_run": {"seconds": round(fill_s, 2), "requests": sent},
                "rerun_from_reply_cache": {"seconds": round(cache_s, 2), "requests": server.request_count - sent,
                                           "cache_hits": from_cache["judge_stats"]["cache_hits"]},
                "rerun_reusing_rows": {"seconds": round(reuse_s, 2), "requests": server.request_count - sent,
                                       "rows_reused": reused["run"]["n_reused"]}}


def offline_judge(items, tmp: Path) -> dict:
    open_items = [i for i in items if i.answer_format == "open"]
    tasks = sorted({i.task for i in open_items})
    by_task = {t: [i for i in open_items if i.task == t] for t in tasks}

    def unrelated(item, i):
        other_task = tasks[(tasks.index(item.task) + len(tasks) // 2) % len(tasks)]
        others = by_task[other_task]
        return others[i % len(others)].answer

    results = {}
    for name, prediction in (("reference_vs_itself", lambda item, i: item.answer),
                             ("reference_vs_unrelated_answer", unrelated)):
        preds = write_rows(tmp / f"offline_{name}.jsonl", rows_from(open_items, len(open_items), prediction))
        started = time.perf_counter()
        summary = run_scoring(ScoreConfig(predictions=preds, out_dir=tmp / f"offline_{name}",
                                          judge=JudgeConfig(name="offline")), emit=lambda m: None)
        overall = summary["overall"]
        results[name] = {"items": len(open_items), "wsi_precision": round(overall["wsi_precision"]["mean"], 4),
                         "wsi_relevance": round(overall["wsi_relevance"]["mean"], 4),
                         "per_capability_precision": {c: round(g["wsi_precision"]["mean"], 4)
                                                      for c, g in summary["capabilities"].items()},
                         "seconds": round(time.perf_counter() - started, 2)}
        log(f"offline judge {name}: {results[name]}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", default=str(Path(__file__).resolve().parents[2] / "shared" / "wsi-bench-sample"))
    parser.add_argument("--quick", action="store_true", help="fewer items (a smoke run)")
    args = parser.parse_args(argv)
    os.environ.setdefault(KEY_ENV, "bench")
    items = read_benchmark(args.sample)
    with tempfile.TemporaryDirectory(prefix="eval-bench-") as tmp:
        tmp = Path(tmp)
        result = {"machine": {"cpus": os.cpu_count()}, "sample": args.sample, "sample_items": len(items),
                  "throughput_latency_100ms": throughput(items, tmp, args.quick),
                  "cached_rerun": cached_rerun(items, tmp, 300 if args.quick else 3000),
                  "offline_judge": offline_judge(items, tmp)}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
