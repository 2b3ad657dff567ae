"""A generation run killed mid-way (SIGKILL, a real crash) and run again: nothing duplicated, nothing lost,
and the LLM is not paid twice for replies that had already arrived."""

import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from curation import cli
from curation.cleaning import run_cleaning
from curation.prompts import vqa
from curation.store.review_store import ReviewStore
from wsi_bench.tasks import TASKS
from tests.curation.conftest import KEY_ENV, add_synthetic_reports
from tests.helpers.openai_server import OpenAIStandIn

REPO = Path(__file__).resolve().parents[2]
N_REPORTS = 6


def _count(db: Path, sql: str) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        try:
            return conn.execute(sql).fetchone()[0]
        except sqlite3.OperationalError:        # the table is not there yet
            return 0


def test_crash_mid_generation_then_resume(tmp_path, llm_key, responder):
    db = tmp_path / "store.sqlite"
    store = ReviewStore.open(str(db))
    add_synthetic_reports(store, N_REPORTS)
    run_cleaning(store, None)
    store.close()
    total_jobs = N_REPORTS * len(TASKS)
    with OpenAIStandIn(responder=responder, latency_s=0.15) as server:
        args = ["generate", "--store", str(db), "--base-url", server.url, "--model", "stand-in", "--api-key-env",
                KEY_ENV, "--concurrency", "2", "--cache", str(tmp_path / "cache.sqlite"), "--no-progress"]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen([sys.executable, "-m", "curation.cli", *args, "--summary", str(tmp_path / "first.json")],
                                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while _count(db, "SELECT count(*) FROM generation_jobs") < 20:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the first run made no progress"
            time.sleep(0.05)
        proc.kill()
        proc.wait()
        done_before = _count(db, "SELECT count(*) FROM generation_jobs")
        assert 20 <= done_before < total_jobs
        assert not (tmp_path / "first.json").exists()                     # it really died mid-run
        server.latency_s = 0.0
        assert cli.main([*args, "--summary", str(tmp_path / "second.json")]) == 0
        requests = server.request_count
    store = ReviewStore.open(str(db))
    with store.db.read() as s:
        from sqlalchemy import select
        from curation.store.schema import GenerationJob, PairRow
        jobs = list(s.scalars(select(GenerationJob)))
        pairs = list(s.scalars(select(PairRow)))
    assert len(jobs) == total_jobs and {j.status for j in jobs} == {"ok"}
    per_slide_task = Counter((p.slide_id, p.task) for p in pairs)
    assert len(per_slide_task) == total_jobs
    assert all(n == vqa.TASK_RULES[task].max_pairs for (_, task), n in per_slide_task.items())   # none lost
    assert len({(p.slide_id, p.task, p.question, p.answer) for p in pairs}) == len(pairs)         # none twice
    assert total_jobs <= requests <= total_jobs + 2           # at most the calls in flight at the kill are repeated
    import json
    second = json.loads((tmp_path / "second.json").read_text())
    assert second["counts"].get("already_done") == done_before
