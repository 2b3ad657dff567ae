"""Agreement statistics against hand-computed values, and the derived review status of a pair."""

import pytest

from curation.store.agreement import agreement_report, cohen_kappa, fleiss_kappa, percent_agreement
from curation.store.status import Event, ReviewInputError, can_undo, resolve, validate_verdict


def test_cohen_kappa_textbook_example():
    # 50 items: both yes 20, A yes/B no 5, A no/B yes 10, both no 15 -> p_o 0.7, p_e 0.5, kappa 0.4
    a = ["accepted"] * 25 + ["rejected"] * 25
    b = ["accepted"] * 20 + ["rejected"] * 5 + ["accepted"] * 10 + ["rejected"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(["accepted"] * 3, ["accepted"] * 3) is None          # chance agreement 1: undefined


def test_fleiss_kappa_textbook_example():
    # Fleiss (1971) as tabulated on Wikipedia: 10 items, 14 raters, 5 categories -> kappa 0.210
    table = [(0, 0, 0, 0, 14), (0, 2, 6, 4, 2), (0, 0, 3, 5, 6), (0, 3, 9, 2, 0), (2, 2, 8, 1, 1),
             (7, 7, 0, 0, 0), (3, 2, 6, 3, 0), (2, 5, 3, 2, 2), (6, 5, 2, 1, 0), (0, 2, 2, 3, 7)]
    counts = [{str(j): n for j, n in enumerate(row)} for row in table]
    assert fleiss_kappa(counts) == pytest.approx(0.2099, abs=5e-4)
    with pytest.raises(ValueError, match="same number of ratings"):
        fleiss_kappa([{"a": 2}, {"a": 3}])


HAND = {  # 3 annotators x 4 pairs, computed by hand in the comments below
    1: {"a": "accepted", "b": "accepted", "c": "accepted"},
    2: {"a": "accepted", "b": "rejected", "c": "accepted"},
    3: {"a": "rejected", "b": "rejected", "c": "rejected"},
    4: {"a": "accepted", "b": "edited", "c": "rejected"},
}


def test_agreement_report_by_hand():
    # percent: pairs 1 and 3 of 4 agree -> 50 %.
    # Fleiss: P_i = 1, 1/3, 1, 0 -> P_bar 7/12; p_j = 6/12, 5/12, 1/12 -> P_e 62/144; kappa = 0.268293.
    # Cohen a-b: p_o 2/4; a = (acc 3, rej 1), b = (acc 1, rej 2, edit 1) -> p_e 5/16; kappa = 0.272727.
    assert percent_agreement(HAND) == (50.0, 4)
    report = agreement_report(HAND)
    assert report["fleiss_kappa"] == pytest.approx(0.2683, abs=1e-4)
    assert report["fleiss_raters_per_item"] == 3 and report["fleiss_n_items"] == 4
    ab = next(p for p in report["cohen_kappa_pairs"] if p["annotators"] == ["a", "b"])
    assert ab["kappa"] == pytest.approx(0.2727, abs=1e-4) and ab["n_items"] == 4


def ev(i, who, verdict, kind="review", **kw):
    return Event(id=i, annotator=who, kind=kind, verdict=verdict, **kw)


def test_status_pending_until_k_reviews_then_agreement_or_adjudication():
    assert resolve([], 1).status == "pending"
    assert resolve([ev(1, "a", "accepted")], 2).status == "pending"
    assert resolve([ev(1, "a", "accepted"), ev(2, "b", "accepted")], 2).status == "accepted"
    assert resolve([ev(1, "a", "rejected", reason="other"), ev(2, "b", "rejected", reason="duplicate")], 2
                   ).status == "rejected"
    assert resolve([ev(1, "a", "accepted"), ev(2, "b", "rejected")], 2).status == "needs_adjudication"
    same = [ev(1, "a", "edited", answer="x"), ev(2, "b", "edited", answer="x")]
    assert resolve(same, 2).status == "edited"
    different = [ev(1, "a", "edited", answer="x"), ev(2, "b", "edited", answer="y")]
    assert resolve(different, 2).status == "needs_adjudication"
    settled = resolve(different + [ev(3, "lead", "edited", kind="adjudication", answer="z")], 2)
    assert settled.status == "adjudicated" and settled.final.answer == "z"


def test_undo_replays_as_a_stack():
    events = [ev(1, "a", "accepted"), ev(2, "a", "rejected", reason="other"), ev(3, "a", "undo")]
    assert resolve(events, 1).verdicts["a"].verdict == "accepted"
    events.append(ev(4, "a", "undo"))
    assert resolve(events, 1).status == "pending" and not can_undo(events, "a", "review")
    undone_adjudication = [ev(1, "a", "accepted"), ev(2, "b", "rejected"), ev(3, "l", "accepted", kind="adjudication"),
                           ev(4, "l", "undo", kind="adjudication")]
    assert resolve(undone_adjudication, 2).status == "needs_adjudication"


@pytest.mark.parametrize("verdict, reason, fields, message", [
    ("maybe", "", {}, "verdict must be one of"),
    ("rejected", "", {}, "needs a reason from the fixed list"),
    ("rejected", "because", {}, "needs a reason from the fixed list"),
    ("accepted", "other", {}, "only rejections take a reason"),
    ("edited", "", {}, "an edit needs the new question"),
    ("accepted", "", {"answer": "x"}, "only edits carry new text"),
])
def test_verdicts_are_validated(verdict, reason, fields, message):
    with pytest.raises(ReviewInputError, match=message):
        validate_verdict(verdict, reason, fields.get("question"), fields.get("answer"), fields.get("options"))
