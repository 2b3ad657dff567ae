"""Benchmark: VQA generation throughput against a loopback OpenAI-compatible server with fixed latency.

For each concurrency (default 1, 8, 32) a fresh review store gets synthetic TCGA-like reports (cleaned by
the section parser), then `run_generation` runs every WSI-Bench task on them through the real `openai`
SDK against the scripted stand-in (tests/helpers/openai_server.py), which answers after `--latency`
seconds (Nagle's algorithm off, as on real servers). The stand-in runs in a child process so its HTTP handling does not compete with the pipeline
for the GIL. The work grows with the concurrency (`--jobs-per-worker` calls per worker), so ideal
scaling keeps the wall time constant. Prints JSON on stdout. Run from the repository root:

    .venv/bin/python benchmarks/curation_generation.py [--latency 0.1] [--concurrency 1 8 32]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repository root (for tests.helpers)

KEY_ENV = "BENCHMARK_LLM_KEY"


def _serve(latency_s: float, urls, stop) -> None:
    from tests.curation.llm_replies import CurationResponder
    from tests.helpers.openai_server import OpenAIStandIn

    with OpenAIStandIn(responder=CurationResponder(), latency_s=latency_s) as server:
        # http.server writes headers and body as two segments; with Nagle on, the body waits for the client's
        # delayed ACK (~40 ms a request on Linux). A real server (vLLM, OpenAI) does not add that stall.
        server._server.RequestHandlerClass.disable_nagle_algorithm = True
        urls.put(server.url)
        stop.wait()


def run_once(url: str, concurrency: int, jobs_per_worker: int) -> dict:
    from curation.cleaning import run_cleaning
    from curation.generation import run_generation
    from llm.client import LLMClient, LLMSettings
    from curation.reports import report_from_row
    from curation.store.review_store import ReviewStore
    from wsi_bench.tasks import TASKS
    from tests.curation.llm_replies import synthetic_report

    n_reports = max(1, math.ceil(concurrency * jobs_per_worker / len(TASKS)))
    with tempfile.TemporaryDirectory(prefix="bench-generation-") as folder:
        store = ReviewStore.open(os.path.join(folder, "store.sqlite"))
        store.add_reports([report_from_row(synthetic_report(i), f"bench:{i}") for i in range(n_reports)])
        run_cleaning(store, None)
        client = LLMClient(LLMSettings(base_url=url, model="stand-in", api_key_env=KEY_ENV, concurrency=concurrency,
                                       cache_path=os.path.join(folder, "cache.sqlite")))
        client._client()              # warm up: import openai and build the SDK client outside the timing
        start = time.perf_counter()
        summary = run_generation(store, client, progress=False)
        seconds = time.perf_counter() - start
        pairs = store.count_pairs()
        store.close()
    jobs = len(summary.items)
    assert summary.counts == {"ok": jobs}, summary.counts
    return {"concurrency": concurrency, "jobs": jobs, "pairs": pairs, "seconds": round(seconds, 3),
            "jobs_per_s": round(jobs / seconds, 2), "pairs_per_s": round(pairs / seconds, 2),
            "requests_sent": client.stats.requests_sent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.1, help="server latency per request, seconds")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--jobs-per-worker", type=int, default=32)
    args = parser.parse_args()
    os.environ[KEY_ENV] = "benchmark"
    ctx = mp.get_context("spawn")
    urls, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(args.latency, urls, stop), daemon=True)
    server.start()
    try:
        url = urls.get(timeout=60)
        runs = [run_once(url, c, args.jobs_per_worker) for c in args.concurrency]
    finally:
        stop.set()
        server.join(timeout=10)
    base = runs[0]["jobs_per_s"] / runs[0]["concurrency"]
    for run in runs:
        run["speedup_vs_first"] = round(run["jobs_per_s"] / runs[0]["jobs_per_s"], 2)
        run["scaling_efficiency"] = round(run["jobs_per_s"] / (base * run["concurrency"]), 3)
    print(json.dumps({"benchmark": "curation_generation", "latency_s": args.latency, "cpu_count": os.cpu_count(),
                      "ideal_jobs_per_s_per_worker": round(1 / args.latency, 2), "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
