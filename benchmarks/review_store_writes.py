"""Benchmark: review-store writes per second with concurrent writers (optimistic locking included).

Each writer is one annotator thread that, like the review UI, opens a pair (`get_pair`, for its version)
and saves a verdict (`submit_review`: conditional UPDATE + review event + audit entry + status), retrying
with a fresh version when its save is refused as stale. Two scenarios:
- `disjoint`: every writer reviews its own pairs (the common case: different annotators, different pairs);
- `shared`: every writer reviews the same pairs at once (k = writers), so saves collide and are refused.
Prints JSON: successful writes/s, refused stale saves, p50/p95 latency of a save. Run from the repo root:

    .venv/bin/python benchmarks/review_store_writes.py [--writers 16] [--store postgresql+psycopg://...]

Without --store it uses a SQLite file in a temporary folder. A PostgreSQL URL must name an empty database.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _pair(index: int) -> dict:
    patient = f"TCGA-BW-{index:04d}"
    return dict(uid=f"bench-{index}", origin="imported", slide_id=f"{patient}-01Z", patient_id=patient,
                image=f"TCGA-BRCA/{patient}-01Z.pt", task="grading", capability="diagnosis", answer_format="open",
                question=f"What is the grade of tumour {index}?", options=None, answer="Grade 2.",
                record={"id": f"{patient}-1"}, generator_model="bench", prompt_version="bench", checks=[])


def scenario(store, name: str, writers: list[str], assignments: dict[str, list[int]]) -> dict:
    barrier = threading.Barrier(len(writers) + 1)
    latencies: list[float] = []
    refused = [0]
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(who: str) -> None:
        try:
            barrier.wait()
            for pair_id in assignments[who]:
                while True:
                    version = store.get_pair(pair_id, who).version
                    start = time.perf_counter()
                    try:
                        store.submit_review(pair_id, who, "accepted", version, comment=name)
                    except StaleVersionError:
                        with lock:
                            refused[0] += 1
                        continue
                    with lock:
                        latencies.append(time.perf_counter() - start)
                    break
        except BaseException as exc:
            errors.append(exc)

    from curation.store.views import StaleVersionError

    threads = [threading.Thread(target=work, args=(w,)) for w in writers]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    ordered = sorted(latencies)
    return {"scenario": name, "writers": len(writers), "writes": len(latencies), "seconds": round(seconds, 3),
            "writes_per_s": round(len(latencies) / seconds, 1), "refused_stale": refused[0],
            "save_latency_ms_p50": round(1000 * statistics.median(ordered), 2),
            "save_latency_ms_p95": round(1000 * ordered[int(0.95 * (len(ordered) - 1))], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--writes-per-writer", type=int, default=50)
    parser.add_argument("--shared-pairs", type=int, default=20)
    parser.add_argument("--store", help="SQLAlchemy URL of an empty database (default: a temporary SQLite file)")
    args = parser.parse_args()
    from curation.store.review_store import ReviewStore

    with tempfile.TemporaryDirectory(prefix="bench-store-") as folder:
        store = ReviewStore.open(args.store or os.path.join(folder, "store.sqlite"))
        n_disjoint = args.writers * args.writes_per_writer
        store.save_imported([_pair(i) for i in range(n_disjoint + args.shared_pairs)], "bench")
        store.add_annotator("lead", role="lead")
        writers = [f"writer{i:02d}" for i in range(args.writers)]
        for name in writers:
            store.add_annotator(name, actor="lead")
        store.set_blind_mode(False, actor="lead")
        ids = [item.pair_id for item in store.queue("lead", limit=n_disjoint + args.shared_pairs)]
        disjoint = {w: ids[i * args.writes_per_writer:(i + 1) * args.writes_per_writer] for i, w in enumerate(writers)}
        shared = {w: ids[n_disjoint:] for w in writers}
        runs = [scenario(store, "disjoint", writers, disjoint), scenario(store, "shared", writers, shared)]
        audit = len(store.audit_log())
        store.close()
    print(json.dumps({"benchmark": "review_store_writes", "store": "sqlite (temporary file)" if not args.store
                      else args.store.split("@")[-1], "cpu_count": os.cpu_count(), "audit_entries": audit,
                      "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
