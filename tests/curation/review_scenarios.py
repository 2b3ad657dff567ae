"""Review-store scenarios run against every backend (SQLite here, PostgreSQL when a server can start)."""

from __future__ import annotations

import threading
from collections import Counter

from curation.store.status import resolve
from curation.store.views import StaleVersionError
from curation.store.reviews import event_of
from curation.store.schema import ReviewRow
from tests.curation.conftest import imported_pair


def concurrent_reviews(store, n_annotators: int = 12, n_pairs: int = 4) -> dict:
    """Every annotator saves a verdict on every pair at the same moment, retrying when refused as stale.

    Checks that no update was lost (each annotator ends with exactly one verdict per pair and the pair's
    version counts every successful save), that every refused save is in the audit log, and returns counts.
    """
    store.save_imported([imported_pair(i) for i in range(n_pairs)], "concurrency")
    store.add_annotator("lead", role="lead")
    names = [f"ann{i:02d}" for i in range(n_annotators)]
    for name in names:
        store.add_annotator(name, actor="lead")
    store.set_blind_mode(False, actor="lead")
    pair_ids = [item.pair_id for item in store.queue("lead", limit=n_pairs)]
    barrier = threading.Barrier(n_annotators)
    refused: Counter = Counter()
    saved: Counter = Counter()
    errors: list[BaseException] = []

    def annotate(index: int, name: str) -> None:
        try:
            barrier.wait()
            for pair_id in pair_ids:
                verdict = "accepted" if (index + pair_id) % 3 else "rejected"
                while True:
                    version = store.get_pair(pair_id, name).version
                    try:
                        store.submit_review(pair_id, name, verdict, version,
                                            reason="other" if verdict == "rejected" else "", comment=name)
                        saved[pair_id] += 1
                        break
                    except StaleVersionError:
                        refused[pair_id] += 1
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=annotate, args=(i, n)) for i, n in enumerate(names)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    with store.db.read() as session:
        from sqlalchemy import select
        rows = list(session.scalars(select(ReviewRow).order_by(ReviewRow.id)))
    for pair_id in pair_ids:
        view = store.get_pair(pair_id, "lead")
        events = [event_of(r) for r in rows if r.pair_id == pair_id]
        verdicts = resolve(events, 1).verdicts
        assert sorted(verdicts) == names, "a verdict was lost"
        assert view.version == saved[pair_id] == n_annotators
        audit = Counter(a.action for a in store.audit_log(pair_id=pair_id))
        assert audit["review"] == n_annotators and audit["save_refused_stale"] == refused[pair_id]
        assert [v for v in (a.version_after for a in store.audit_log(pair_id=pair_id)
                            if a.action == "review")] == list(range(1, n_annotators + 1))
    return {"saved": sum(saved.values()), "refused": sum(refused.values()), "reviews": len(rows)}


def basic_flow(store) -> None:
    """Add, assign, review, refuse a stale save, adjudicate, export rows: the store API end to end."""
    store.save_imported([imported_pair(i) for i in range(3)], "flow")
    store.add_annotator("lead", role="lead")
    store.add_annotator("ann", actor="lead")
    store.add_annotator("bob", actor="lead")
    assert store.assign("lead", k=2)["assignments"] == 6
    pair_id = store.queue("ann")[0].pair_id
    version = store.get_pair(pair_id, "ann").version
    first = store.submit_review(pair_id, "ann", "accepted", version)
    try:
        store.submit_review(pair_id, "bob", "accepted", version)
        raise AssertionError("a stale save was accepted")
    except StaleVersionError:
        pass
    second = store.submit_review(pair_id, "bob", "rejected", first.version, reason="ambiguous")
    assert second.status == "needs_adjudication"
    done = store.adjudicate(pair_id, "lead", "edited", second.version, answer="Grade 2.")
    assert done.status == "adjudicated"
    assert [f.answer for f in store.final_pairs()] == ["Grade 2."]
    assert store.stats()["by_status"]["adjudicated"] == 1
