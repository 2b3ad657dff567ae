"""Many threads saving reviews at once on SQLite: no lost update, a complete audit log, stale saves refused."""

from tests.curation.review_scenarios import basic_flow, concurrent_reviews


def test_many_threads_saving_reviews_at_once(store):
    counts = concurrent_reviews(store, n_annotators=12, n_pairs=4)
    assert counts["saved"] == counts["reviews"] == 48
    assert counts["refused"] > 0                       # they really did collide, and were refused


def test_store_flow_on_sqlite(store):
    basic_flow(store)
