"""The review store API the CLI and the review UI use: roles, assignment, queues, blind mode, verdicts with
optimistic locking, undo, adjudication, progress, the append-only audit log and the export rows."""

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from curation.store.status import ReviewInputError
from curation.store.review_store import ReviewStore
from curation.store.views import NotFound, PermissionDenied, StaleVersionError
from tests.curation.conftest import imported_pair


@pytest.fixture
def team(store):
    store.save_imported([imported_pair(i) for i in range(6)] + [imported_pair(9, task="staging")], "fixture")
    store.add_annotator("lead", role="lead")
    for name in ("ann", "bob", "cat"):
        store.add_annotator(name, actor="lead")
    return store


def ids(items):
    return [item.pair_id for item in items]


def test_roles_are_enforced(team):
    with pytest.raises(PermissionDenied, match="not a lead"):
        team.add_annotator("eve", actor="ann")
    with pytest.raises(PermissionDenied):
        team.assign("ann", k=2)
    with pytest.raises(PermissionDenied):
        team.set_blind_mode(False, actor="bob")
    with pytest.raises(PermissionDenied):
        team.adjudication_queue("ann")
    with pytest.raises(NotFound, match="unknown annotator 'zed'"):
        team.queue("zed")
    assert [a["role"] for a in team.annotators()] == ["annotator", "annotator", "annotator", "lead"]


def test_k_overlap_assignment_is_balanced_and_idempotent(team):
    result = team.assign("lead", k=2, tasks=["grading"])
    assert result["pairs"] == 6 and result["assignments"] == 12
    assert sorted(result["per_annotator"].values()) == [4, 4, 4]
    assert team.assign("lead", k=2, tasks=["grading"])["assignments"] == 0
    with pytest.raises(ReviewInputError, match="between 1 and the number of annotators"):
        team.assign("lead", k=4)
    queues = {name: set(ids(team.queue(name, tasks=["grading"]))) for name in ("ann", "bob", "cat")}
    assert team.queue("lead", tasks=["grading"]) == []                   # the lead holds no grading assignment
    assert all(len(q) == 4 for q in queues.values())
    staging = team.queue("ann", tasks=["staging"])                        # unassigned: open to everyone
    assert len(staging) == 1 and staging[0].task == "staging"


def test_review_flow_with_blind_mode_stale_refusal_undo_and_adjudication(team):
    team.assign("lead", k=2, tasks=["grading"])
    pair_id = team.queue("ann")[0].pair_id
    view_a = team.get_pair(pair_id, "ann")
    other = next(n for n in ("bob", "cat") if pair_id in ids(team.queue(n)))
    view_b = team.get_pair(pair_id, other)
    assert view_a.blind and view_a.status == "hidden" and view_a.assigned == []
    first = team.submit_review(pair_id, "ann", "accepted", view_a.version)
    assert first.status == "pending" and first.version == view_a.version + 1
    with pytest.raises(StaleVersionError, match="Reload the pair") as stale:
        team.submit_review(pair_id, other, "rejected", view_b.version, reason="not_grounded")
    assert stale.value.current_version == first.version
    view_b = team.get_pair(pair_id, other)
    assert [r.annotator for r in view_b.reviews] == []                   # blind: ann's verdict is not shown
    second = team.submit_review(pair_id, other, "rejected", view_b.version, reason="not_grounded", comment="no grade")
    assert second.status == "needs_adjudication"
    assert ids(team.adjudication_queue("lead")) == [pair_id]
    lead_view = team.get_pair(pair_id, "lead")
    assert not lead_view.blind and {r.annotator for r in lead_view.reviews} == {"ann", other}
    final = team.adjudicate(pair_id, "lead", "edited", lead_view.version, answer="Nottingham grade 2.")
    assert final.status == "adjudicated" and team.adjudication_queue("lead") == []
    undone = team.undo(pair_id, "lead", final.version, kind="adjudication")
    assert undone.status == "needs_adjudication"
    redone = team.adjudicate(pair_id, "lead", "accepted", undone.version)
    actions = [(a.actor, a.action) for a in team.audit_log(pair_id=pair_id)]
    assert actions == [("lead", "assigned"), ("ann", "review"), (other, "save_refused_stale"), (other, "review"),
                       ("lead", "adjudication"), ("lead", "undo"), ("lead", "adjudication")]
    assert team.get_pair(pair_id, "lead").version == redone.version


def test_unassigned_annotator_cannot_review_an_assigned_pair(team):
    team.assign("lead", k=1, annotators=["ann"], tasks=["grading"])
    pair_id = team.queue("ann")[0].pair_id
    with pytest.raises(PermissionDenied, match="pick it from your own queue"):
        team.submit_review(pair_id, "bob", "accepted", team.get_pair(pair_id, "lead").version)


def test_undo_is_a_new_event_and_the_queue_follows_it(team):
    pair_id = team.queue("ann", tasks=["staging"])[0].pair_id
    v = team.get_pair(pair_id, "ann").version
    saved = team.submit_review(pair_id, "ann", "edited", v, question="Which TNM stage is shown?")
    assert saved.status == "edited" and team.queue("ann", tasks=["staging"]) == []
    view = team.get_pair(pair_id, "ann")
    assert view.can_undo and view.my_review.question == "Which TNM stage is shown?"
    team.undo(pair_id, "ann", saved.version)
    assert ids(team.queue("ann", tasks=["staging"])) == [pair_id]
    with pytest.raises(ReviewInputError, match="no review on pair"):
        team.undo(pair_id, "ann", saved.version + 1)
    assert [r.verdict for r in team.get_pair(pair_id, "lead").reviews] == ["edited", "undo"]


def test_queue_filters_without_blind_mode_and_progress(team):
    team.set_blind_mode(False, actor="lead")
    first, second = ids(team.queue("cat"))[:2]
    team.submit_review(first, "cat", "accepted", team.get_pair(first, "cat").version)
    team.submit_review(second, "cat", "rejected", team.get_pair(second, "cat").version, reason="duplicate")
    assert ids(team.queue("ann", statuses=["rejected"], include_reviewed=True)) == [second]
    assert team.get_pair(first, "ann").status == "accepted"
    assert team.queue("ann", tasks=["grading"], limit=2, offset=1)[0].pair_id == ids(team.queue("ann"))[1]
    [cat] = team.progress("cat")
    assert (cat.reviewed, cat.accepted, cat.rejected, cat.assigned) == (2, 1, 1, 0)


def test_final_pairs_apply_edits_and_leave_out_rejections(team):
    team.set_blind_mode(False, actor="lead")
    a, b, c = ids(team.queue("ann"))[:3]
    team.submit_review(a, "ann", "accepted", 0)
    team.submit_review(b, "ann", "edited", 0, answer="Grade 3, poorly differentiated.")
    team.submit_review(c, "ann", "rejected", 0, reason="factually_wrong")
    finals = {f.pair_id: f for f in team.final_pairs()}
    assert set(finals) == {a, b}
    assert finals[b].answer == "Grade 3, poorly differentiated." and finals[b].final_verdict == "edited"
    assert finals[a].answer == team.get_pair(a, "lead").answer and finals[a].reviewers == ["ann"]


def test_audit_log_and_reviews_are_append_only(team):
    pair_id = ids(team.queue("ann"))[0]
    team.submit_review(pair_id, "ann", "accepted", 0)
    for statement in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log", "UPDATE reviews SET verdict = 'x'",
                      "DELETE FROM reviews"):
        with pytest.raises(DBAPIError, match="append-only"):
            with team.db.engine.begin() as conn:
                conn.execute(text(statement))


def test_store_reopens_and_rejects_bad_targets(team, tmp_path):
    again = ReviewStore.open(str(tmp_path / "store.sqlite"))
    assert again.count_pairs() == 7 and again.role_of("lead") == "lead"
    from curation.store.db import StoreError
    with pytest.raises(StoreError, match="driver|neither"):
        ReviewStore.open("nosuchdriver+x://host/db")


def test_blind_mode_hides_pairs_assigned_to_others(team):
    team.assign("lead", k=2, tasks=["grading"])
    queues = {name: set(ids(team.queue(name, tasks=["grading"]))) for name in ("ann", "bob", "cat")}
    foreign = next(iter(queues["bob"] - queues["ann"]))
    with pytest.raises(PermissionDenied, match="blind mode"):
        team.get_pair(foreign, "ann")
    assert team.get_pair(foreign, "lead").pair_id == foreign         # leads see everything
    team.set_blind_mode(False, actor="lead")
    assert team.get_pair(foreign, "ann").pair_id == foreign          # open mode: visible, still not writable


def test_can_open_follows_the_queue_rule(team):
    team.assign("lead", k=1, annotators=["ann"], tasks=["grading"])
    grading = ids(team.queue("ann", tasks=["grading"]))
    [staging] = ids(team.queue("bob", tasks=["staging"]))                  # assigned to nobody
    assert grading and all(team.can_open(p, "ann") for p in grading)      # own queue
    assert team.can_open(staging, "ann") and team.can_open(staging, "bob")
    assert not team.can_open(grading[0], "bob")                           # ann's pair, blind mode (the default)
    assert "is not in your queue" in team.open_refusal(grading[0], "bob")
    assert all(team.can_open(p, "lead") for p in grading + [staging])     # leads open any pair
    assert not team.can_open(grading[0], "zed") and "unknown annotator 'zed'" in team.open_refusal(grading[0], "zed")
    assert not team.can_open(10_000, "ann") and not team.can_open(10_000, "lead")
    assert team.open_refusal(10_000, "lead") == "no pair 10000 in this store."
    team.set_blind_mode(False, actor="lead")
    assert not team.can_open(grading[0], "bob")                           # open mode: still not in bob's queue


def test_can_open_in_blind_mode_ends_with_adjudication(team):
    [pair_id] = ids(team.queue("ann", tasks=["staging"]))
    version = team.submit_review(pair_id, "ann", "accepted", 0).version
    version = team.submit_review(pair_id, "bob", "rejected", version, reason="duplicate").version
    team.adjudicate(pair_id, "lead", "accepted", version)
    assert not team.can_open(pair_id, "ann") and team.can_open(pair_id, "lead")
    team.set_blind_mode(False, actor="lead")
    assert team.can_open(pair_id, "ann")                                  # open mode: adjudicated pairs stay listed
