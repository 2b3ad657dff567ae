"""Benchmark: concurrent review sessions through the Gradio API of the Curation review tab.

The review tab runs alone in a server subprocess over a SQLite store built by the real curation pipeline
(synthetic reports, scripted LLM on loopback; k-overlap assignment, blind mode on). N `gradio_client`
sessions, one per annotator, each sign in with a password and then, for the duration, work like a person
at the keyboard: accept (50 %), edit the answer (20 %), reject with a reason (20 %) or undo (10 %), reading
for a think time between actions (uniform 0.5-1.5 x --think-s; 0 = back to back, a stress test). A save
refused as stale (another annotator saved the same pair first) is followed by Reload (which keeps the
draft) and one retry. When a queue is empty the session goes on re-reviewing its own pairs.

Checks, against the store afterwards: every save a client was told succeeded is in the audit log exactly
once with its actor, pair, verdict and version, the log holds no review the clients did not make, every
refusal the clients saw is logged as `save_refused_stale`, and replaying each annotator's acknowledged
verdicts and undos gives the store's current verdicts (no lost update). Prints JSON: counts, throughput,
p50/p95/p99 latency per action and overall, sign-in latency, and the checks. Run from the repo root:

    .venv/bin/python benchmarks/review_sessions.py [--sessions 20] [--duration-s 60] [--think-s 2] [--reports 40]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ACTIONS = (("accept", 0.5), ("save_edit", 0.2), ("reject", 0.2), ("undo", 0.1))
REASONS = ("not_grounded", "factually_wrong", "ambiguous", "other")
_SAVED = re.compile(r"Saved: (accepted|edited|rejected) pair (\d+) \(version (\d+)")
_UNDONE = re.compile(r"verdict on pair (\d+) is taken back \(version (\d+)\)")
# outputs of load_queue / accept / save_edit / reject / undo (states excluded)
SCREEN = ["queue", "progress", "header", "thumbnail", "report", "enrichment", "context", "removed", "question",
          "options", "answer", "reason", "comment", "checks", "provenance", "message"]


def _value(item):
    return item.get("value") if isinstance(item, dict) and item.get("__type__") == "update" else item


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    pick = lambda q: round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)
    return {"n": len(ordered), "p50_ms": pick(0.50), "p95_ms": pick(0.95), "p99_ms": pick(0.99),
            "max_ms": round(1000 * ordered[-1], 1)}


# -- the server subprocess -------------------------------------------------------------------------------
def serve(store: str, users: str, port: int) -> None:
    import gradio as gr

    from ui.review.tab import build_review_tab

    with gr.Blocks() as demo, gr.Tab("Curation review"):
        build_review_tab(store, users)
    demo.launch(server_name="127.0.0.1", server_port=port, quiet=True, show_error=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(store: Path, users: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    process = subprocess.Popen([sys.executable, __file__, "--serve", str(store), str(users), str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the review server exited: {process.stderr.read()[-2000:]}")
        try:
            urllib.request.urlopen(url + "config", timeout=2)
            return process, url
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("the review server did not start within 120 s")


# -- data ----------------------------------------------------------------------------------------------
def build(folder: Path, n_reports: int, names: list[str], k: int) -> tuple[Path, Path, dict]:
    from curation.store.review_store import ReviewStore
    from curation.store.users import UsersFile
    from tests.app.review_fixtures import build_store, password_of

    started = time.perf_counter()
    path = build_store(folder / "store.sqlite", n_reports=n_reports, annotators=names)
    store = ReviewStore.open(str(path))
    assigned = store.assign("lead", k=k)
    pairs = store.count_pairs()
    store.close()
    users = folder / "users.json"
    file = UsersFile.load(users, missing_ok=True)
    for name in names:
        file.set_password(name, password_of(name))                   # the real PBKDF2 cost
    file.save()
    return path, users, {"pairs": pairs, "assignments": assigned["assignments"],
                         "build_s": round(time.perf_counter() - started, 1)}


# -- one review session ----------------------------------------------------------------------------------
class Session:
    def __init__(self, url: str, name: str, seed: int, think_s: float) -> None:
        self.url, self.name, self.random, self.think_s = url, name, random.Random(seed), think_s
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.acknowledged: list[dict] = []          # saves/undos the server confirmed
        self.refused = 0
        self.errors: Counter = Counter()
        self.filters = ([], ["pending"], [], False)
        self.screen: dict = {}

    def call(self, action: str, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.client.predict(*args, api_name=f"/{action}", **kwargs)
        finally:
            self.latency[action].append(time.perf_counter() - start)

    def show(self, result) -> None:
        self.screen = {name: _value(v) for name, v in zip(SCREEN, result)}

    def run(self, stop_at: float) -> None:
        from gradio_client import Client

        from tests.app.review_fixtures import password_of

        self.client = Client(self.url, verbose=False)
        self.call("sign_in", self.name, password_of(self.name))
        self.show(self.call("load_queue", *self.filters, reason=None))
        while time.monotonic() < stop_at:
            if not self.screen.get("queue", {}).get("data") and not self.filters[3]:
                self.filters = ([], ["pending"], [], True)                    # queue done: re-review own pairs
                self.show(self.call("load_queue", *self.filters, reason=None))
                continue
            action = self.random.choices([a for a, _ in ACTIONS], [w for _, w in ACTIONS])[0]
            self.act(action, retry=True)
            if self.think_s:
                time.sleep(self.think_s * self.random.uniform(0.5, 1.5))

    def act(self, action: str, retry: bool) -> None:
        from gradio_client.exceptions import AppError

        question, options, answer = (self.screen.get(k) or "" for k in ("question", "options", "answer"))
        reason = self.random.choice(REASONS) if action == "reject" else None
        if action == "save_edit" and options:                                 # multiple choice: another letter
            answer = self.random.choice([line[0] for line in options.splitlines() if line[:1] != answer])
        elif action == "save_edit":
            answer = f"{answer} (edited by {self.name} #{len(self.acknowledged)})"
        try:
            if action == "undo":
                result = self.call("undo", *self.filters)
            else:
                result = self.call(action, *self.filters, question, options, answer, reason, f"{self.name} bench")
        except AppError as exc:
            message = str(exc)
            if "changed after you opened it" in message:
                self.refused += 1
                reloaded = self.call("reload_pair", question, options, answer, reason, "")
                self.screen.update({n: _value(v) for n, v in zip(SCREEN[2:], reloaded)})
                if retry:
                    self.act(action, retry=False)
            elif "Nothing to undo" in message or "has no review" in message:
                self.errors["nothing_to_undo"] += 1
            else:
                self.errors[message[:120]] += 1
                self.show(self.call("load_queue", *self.filters, reason=None))
            return
        self.show(result)
        if self.screen["message"].startswith("Nothing was undone"):       # the pair changed since: refused, logged
            self.refused += 1
            return
        self.record(action, self.screen["message"])

    def record(self, action: str, message: str) -> None:
        if action == "undo":
            pair, version = _UNDONE.search(message).groups()
            self.acknowledged.append({"actor": self.name, "action": "undo", "verdict": "undo", "pair_id": int(pair),
                                      "version_after": int(version)})
            return
        verdict, pair, version = _SAVED.search(message).groups()
        self.acknowledged.append({"actor": self.name, "action": "review", "verdict": verdict, "pair_id": int(pair),
                                  "version_after": int(version)})


# -- verification ----------------------------------------------------------------------------------------
def verify(store_path: Path, sessions: list[Session]) -> dict:
    from curation.store.status import Event, current_states
    from curation.store.review_store import ReviewStore

    names = {s.name for s in sessions}
    store = ReviewStore.open(str(store_path))
    log = [a for a in store.audit_log() if a.actor in names]
    stored = Counter((a.actor, a.action, a.details.get("verdict"), a.pair_id, a.version_after)
                     for a in log if a.action in ("review", "undo"))
    told = Counter((r["actor"], r["action"], r["verdict"], r["pair_id"], r["version_after"])
                   for s in sessions for r in s.acknowledged)
    lost = told - stored                        # acknowledged, not in the log
    phantom = stored - told                     # in the log, never acknowledged
    refused_logged = sum(1 for a in log if a.action == "save_refused_stale")
    mismatched = 0
    by_pair: dict[int, list[dict]] = defaultdict(list)
    for s in sessions:
        for record in s.acknowledged:
            by_pair[record["pair_id"]].append(record)
    for pair_id, records in by_pair.items():
        records.sort(key=lambda r: r["version_after"])
        expected = current_states([Event(i, r["actor"], "review", r["verdict"]) for i, r in enumerate(records)],
                                  "review")
        view = store.get_pair(pair_id, "lead")
        actual = current_states([Event(r.id, r.annotator, r.kind, r.verdict) for r in view.reviews], "review")
        mismatched += {a: e.verdict for a, e in expected.items()} != {a: e.verdict for a, e in actual.items()}
    stats = store.stats()
    store.close()
    return {"acknowledged": sum(told.values()), "in_audit_log": sum(stored.values()),
            "lost_updates": sum(lost.values()),
            "phantom_writes": sum(phantom.values()), "stale_refused_seen": sum(s.refused for s in sessions),
            "stale_refused_logged": refused_logged, "pairs_checked": len(by_pair),
            "pairs_with_wrong_final_verdicts": mismatched, "by_status": stats["by_status"]}


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument("--think-s", type=float, default=2.0, help="mean reading time between actions (0: none)")
    parser.add_argument("--reports", type=int, default=40, help="synthetic reports (21 pairs each)")
    parser.add_argument("--k", type=int, default=2, help="reviews per pair (k-overlap assignment)")
    args = parser.parse_args()
    names = [f"ann{i:02d}" for i in range(args.sessions)]
    with tempfile.TemporaryDirectory(prefix="bench-review-") as folder:
        store_path, users, data = build(Path(folder), args.reports, names, args.k)
        process, url = start_server(store_path, users)
        try:
            sessions = [Session(url, name, seed, args.think_s) for seed, name in enumerate(names)]
            errors: list[Exception] = []

            def work(session: Session, stop_at: float) -> None:
                try:
                    session.run(stop_at)
                except Exception as exc:  # noqa: BLE001 - raised below, in the main thread
                    errors.append(exc)

            start = time.monotonic()
            threads = [threading.Thread(target=work, args=(s, start + args.duration_s)) for s in sessions]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds = time.monotonic() - start
        finally:
            process.terminate()
            process.wait(timeout=30)
        if errors:
            raise errors[0]
        checks = verify(store_path, sessions)
    latency = defaultdict(list)
    for s in sessions:
        for action, values in s.latency.items():
            latency[action].extend(values)
    writes = [v for a in ("accept", "save_edit", "reject", "undo") for v in latency[a]]
    everything = [v for values in latency.values() for v in values]
    result = {
        "benchmark": "review_sessions", "cpu_count": os.cpu_count(), "sessions": args.sessions,
        "duration_s": round(seconds, 1), "think_s": args.think_s, "k": args.k, **data,
        "calls": len(everything), "calls_per_s": round(len(everything) / seconds, 1),
        "acknowledged_writes_per_s": round(checks["acknowledged"] / seconds, 1),
        "latency_all": percentiles(everything), "latency_writes": percentiles(writes),
        "latency_by_action": {a: percentiles(v) for a, v in sorted(latency.items())},
        "other_errors": dict(sum((s.errors for s in sessions), Counter())),
        "checks": checks,
        "no_lost_update": checks["lost_updates"] == 0 and checks["phantom_writes"] == 0
        and checks["pairs_with_wrong_final_verdicts"] == 0
        and checks["stale_refused_seen"] == checks["stale_refused_logged"],
    }
    print(json.dumps(result, indent=1))
    return 0 if result["no_lost_update"] else 1


if __name__ == "__main__":
    sys.exit(main())
