"""The Curation review tab through its Gradio API (gradio_client against a real server over a real SQLite
store built by the curation pipeline): sign-in, queue and filters, accept / edit / reject / undo, stale
saves refused with the store's message and the draft kept, blind mode, lead-only actions, adjudication,
export and push to the loopback Hub."""

from __future__ import annotations

import pytest
from gradio_client import Client

from curation.store.review_store import ReviewStore
from tests.app.review_fixtures import (
    build_store,
    copy_store,
    password_of,
    review_server,
    write_thumbnail,
    write_users,
)

PAIR = ["header", "thumbnail", "report", "enrichment", "context", "removed", "question", "options", "answer",
        "reason", "comment", "checks", "provenance"]
SCREEN = ["queue", "progress", *PAIR, "message"]        # load_queue, accept, save_edit, reject, undo
OPENED = [*PAIR, "message"]                             # open_pair, next_pair, reload_pair
NO_FILTERS = ([], ["pending"], [], False)


def named(result, names) -> dict:
    """Output tuple -> {name: value}, gr.update dicts unwrapped to their value."""
    assert len(result) == len(names), (len(result), names)
    return {name: (v.get("value") if isinstance(v, dict) and v.get("__type__") == "update" else v)
            for name, v in zip(names, result)}


def sign_in(url: str, name: str) -> Client:
    client = Client(url, verbose=False)
    who, _ = client.predict(name, password_of(name), api_name="/sign_in")
    assert f"Signed in as **{name}**" in who
    return client


def screen(client, *filters) -> dict:
    return named(client.predict(*(filters or NO_FILTERS), reason=None, api_name="/load_queue"), SCREEN)


def opened_id(view: dict) -> int:
    return int(view["header"].split("### Pair ")[1].split(" ")[0])


def verdict(client, action: str, question="", options="", answer="", reason=None, comment="",
            filters=NO_FILTERS) -> dict:
    return named(client.predict(*filters, question, options, answer, reason, comment, api_name=f"/{action}"),
                 SCREEN)


@pytest.fixture(scope="module")
def pipeline_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("review-base")
    return build_store(folder / "base.sqlite", annotators=("ann", "bob"))


@pytest.fixture
def team(pipeline_store, tmp_path):
    """A fresh copy of the store, the users file (lead, ann, bob, and eve who is not in the store)."""
    path = copy_store(pipeline_store, tmp_path / "store.sqlite")
    users = write_users(tmp_path / "users.json", ("lead", "ann", "bob", "eve"))
    return path, users


def open_store(path) -> ReviewStore:
    return ReviewStore.open(str(path))


def test_sign_in_is_required_and_checked(team, tmp_path):
    path, users = team
    with review_server(path, users) as url:
        anonymous = Client(url, verbose=False)
        for call in (lambda: anonymous.predict(*NO_FILTERS, reason=None, api_name="/load_queue"),
                     lambda: anonymous.predict(*NO_FILTERS, "q", "", "a", None, "", api_name="/accept"),
                     lambda: anonymous.predict(*NO_FILTERS, api_name="/undo"),
                     lambda: anonymous.predict(api_name="/lead_stats"),
                     lambda: anonymous.predict("curated", api_name="/export")):
            with pytest.raises(Exception, match="Sign in first"):
                call()
        with pytest.raises(Exception, match="Wrong name or password for ann"):
            anonymous.predict("ann", "not-the-password", api_name="/sign_in")
        with pytest.raises(Exception, match="eve signed in with a password, but is not an annotator") as refused:
            anonymous.predict("eve", password_of("eve"), api_name="/sign_in")
        assert str(tmp_path) not in str(refused.value)                  # no store path for who is not signed in
        signed = sign_in(url, "ann")
        signed.predict(api_name="/sign_out")
        with pytest.raises(Exception, match="Sign in first"):
            screen(signed)
    with review_server(path, None) as url, pytest.raises(Exception, match="No users file is configured"):
        Client(url, verbose=False).predict("ann", "whatever-pw", api_name="/sign_in")
    store = open_store(path)
    assert [a.action for a in store.audit_log() if a.action in ("review", "undo")] == []
    store.close()


def test_one_address_failing_sign_ins_locks_out_neither_the_name_nor_other_addresses(team, tmp_path):
    """Reported: five wrong passwords for a name locked that annotator out for everyone. Sign-ins are throttled
    by the client's address (here through the proxy header Gradio's server trusts from loopback)."""
    from ui.review.session import MAX_FAILURES_PER_CLIENT

    path, users = team
    with review_server(path, users) as url:
        mallory = Client(url, verbose=False, headers={"X-Forwarded-For": "203.0.113.66"})
        for _ in range(MAX_FAILURES_PER_CLIENT):
            with pytest.raises(Exception, match="Wrong name or password for ann"):
                mallory.predict("ann", "a-guess", api_name="/sign_in")
        with pytest.raises(Exception, match="Too many failed sign-ins from your address; try again in"):
            mallory.predict("ann", password_of("ann"), api_name="/sign_in")
        ann = Client(url, verbose=False, headers={"X-Forwarded-For": "198.51.100.7"})
        who, _ = ann.predict("ann", password_of("ann"), api_name="/sign_in")
        assert "Signed in as **ann**" in who
    missing = tmp_path / "private-folder" / "users.json"
    with review_server(path, missing) as url, pytest.raises(Exception, match="sign-in list of this server cannot "
                                                                            "be read") as refused:
        Client(url, verbose=False).predict("ann", password_of("ann"), api_name="/sign_in")
    assert "private-folder" not in str(refused.value)


def test_queue_shows_the_pair_with_grounding_removed_text_enrichment_and_thumbnail(team, tmp_path):
    path, users = team
    store = open_store(path)
    first = store.queue("ann", limit=1)[0]
    store.close()
    write_thumbnail(tmp_path / "thumbs", first.slide_id)
    with review_server(path, users, thumbnails_dir=str(tmp_path / "thumbs")) as url:
        ann = sign_in(url, "ann")
        view = screen(ann)
        assert len(view["queue"]["data"]) == 42 and view["message"] == "42 pair(s) in your queue."
        assert opened_id(view) == first.pair_id and "version 0 · status **hidden**" in view["header"]
        grounded = [t["token"] for t in view["report"] if t["class_or_confidence"] == "grounds the answer"]
        assert grounded and grounded[0] in view["answer"]
        assert {t["class_or_confidence"] for t in view["removed"]} >= {"removed: gross", "removed: ihc"}
        assert all(t["class_or_confidence"] for t in view["enrichment"])      # every piece labelled inferred
        assert str(view["thumbnail"]).endswith(".png")                            # downloaded by the client
        assert view["progress"]["data"] == [["ann", "annotator", 0, 0, 0, 0, 0, 0, 0]]   # own row only
        grading = screen(ann, ["grading"], ["pending"], [], False)
        assert {row[1] for row in grading["queue"]["data"]} == {"Grading"} and len(grading["queue"]["data"]) == 2
        failing = screen(ann, [], ["pending"], ["diagnosis_leak"], False)
        assert failing["queue"]["data"] and all("diagnosis_leak" in row[4] for row in failing["queue"]["data"])


def test_accept_edit_reject_and_undo_change_the_store(team):
    path, users = team
    with review_server(path, users) as url:
        ann = sign_in(url, "ann")
        first = screen(ann)
        first_id = opened_id(first)
        accepted = verdict(ann, "accept", comment="fine")
        assert f"Saved: accepted pair {first_id} (version 1)" in accepted["message"]
        assert "status" not in accepted["message"].split("version 1")[1]          # blind: no status shown
        second_id = opened_id(accepted)
        assert second_id != first_id and len(accepted["queue"]["data"]) == 41
        with pytest.raises(Exception, match="Nothing was edited"):
            verdict(ann, "save_edit", accepted["question"], accepted["options"] or "", accepted["answer"])
        edited = verdict(ann, "save_edit", accepted["question"], accepted["options"] or "", "A better answer.")
        third_id = opened_id(edited)
        with pytest.raises(Exception, match="Choose a rejection reason"):
            verdict(ann, "reject", comment="why")
        with pytest.raises(Exception, match="is not in the list of choices"):     # gradio refuses made-up reasons
            verdict(ann, "reject", reason="made-up")
        rejected = verdict(ann, "reject", reason="not_grounded", comment="no support")
        assert rejected["progress"]["data"][0][3:8] == [3, 0, 1, 1, 1]
        undone = verdict(ann, "undo")
        assert opened_id(undone) == third_id and f"verdict on pair {third_id} is taken back" in undone["message"]
        assert len(undone["queue"]["data"]) == 40
    store = open_store(path)
    mine = {a.pair_id: a.details for a in store.audit_log(actor="ann") if a.action in ("review", "undo")}
    assert mine[first_id]["verdict"] == "accepted" and mine[first_id]["comment"] == "fine"
    assert mine[second_id] == {**mine[second_id], "verdict": "edited", "answer": "A better answer."}
    assert "question" not in mine[second_id]                      # only the changed field is sent
    assert mine[third_id]["verdict"] == "undo"
    assert store.get_pair(third_id, "ann").my_review is None
    assert [e.reason for e in store.get_pair(third_id, "lead").reviews] == ["not_grounded", ""]
    store.close()


def test_stale_save_is_refused_with_the_message_and_nothing_is_lost(team):
    path, users = team
    with review_server(path, users) as url:
        tab_a, tab_b = sign_in(url, "ann"), sign_in(url, "ann")         # the same annotator in two browsers
        pair_id = opened_id(screen(tab_a))
        view_b = screen(tab_b)
        assert opened_id(view_b) == pair_id
        verdict(tab_a, "accept")
        with pytest.raises(Exception, match=r"changed after you opened it .*NOT saved.*keeps your unsaved edit"):
            verdict(tab_b, "save_edit", view_b["question"], "", "Tab B's careful answer.")
        reloaded = named(tab_b.predict(view_b["question"], "", "Tab B's careful answer.", None, "",
                                       api_name="/reload_pair"), OPENED)
        assert reloaded["answer"] == "Tab B's careful answer." and "unsaved edit is kept" in reloaded["message"]
        assert "version 1" in reloaded["header"] and "Your current verdict: **accepted**" in reloaded["header"]
        saved = verdict(tab_b, "save_edit", view_b["question"], "", "Tab B's careful answer.")
        assert f"edited pair {pair_id} (version 2)" in saved["message"]
        refused = verdict(tab_a, "undo")            # tab A saved version 1; tab B's edit made it 2: nothing undone
        assert f"Nothing was undone: pair {pair_id} changed after you saved it" in refused["message"]
        assert opened_id(refused) == pair_id and "Your current verdict: **edited**" in refused["header"]
        undone = verdict(tab_a, "undo")             # now on screen, at its current version: the edit is taken back
        assert f"verdict on pair {pair_id} is taken back (version 3)" in undone["message"]
    store = open_store(path)
    log = [(a.action, a.details.get("verdict"), a.version_before) for a in store.audit_log(pair_id=pair_id)]
    assert log == [("review", "accepted", 0), ("save_refused_stale", "edited", 0), ("review", "edited", 1),
                   ("save_refused_stale", "undo", 1), ("undo", "undo", 2)]
    assert store.get_pair(pair_id, "ann").my_review.verdict == "accepted"     # back to tab A's accept
    store.close()


def test_blind_mode_shows_annotators_only_their_queue(team):
    path, users = team
    store = open_store(path)
    store.assign("lead", k=1, annotators=["ann", "bob"])
    bobs = {i.pair_id for i in store.queue("bob", limit=100)}
    store.close()
    with review_server(path, users) as url:
        ann = sign_in(url, "ann")
        view = screen(ann, [], ["accepted"], [], False)              # the status filter is ignored when blind
        mine = {row[0] for row in view["queue"]["data"]}
        assert len(mine) == 21 and not mine & bobs and {row[3] for row in view["queue"]["data"]} == {"hidden"}
        assert "Blind mode: other annotators' verdicts are hidden." in view["header"]
        with pytest.raises(Exception, match="is not in your queue"):
            ann.predict(min(bobs), api_name="/open_pair")
        lead = sign_in(url, "lead")
        screen(lead)
        opened = named(lead.predict(min(bobs), api_name="/open_pair"), OPENED)   # leads open any pair
        assert "Assigned to: bob" in opened["header"]


def test_lead_only_actions_are_refused_for_annotators(team):
    path, users = team
    with review_server(path, users) as url:
        ann = sign_in(url, "ann")
        screen(ann)
        calls = {"/lead_stats": (), "/adjudication_queue": (), "/set_blind_mode": (False,), "/assign": (2,),
                 "/adjudicate": ("accepted", "q", "", "a", None, ""), "/undo_adjudication": (),
                 "/export": ("curated",), "/push": ("curated", "tester/x", True)}
        for api_name, args in calls.items():
            with pytest.raises(Exception, match="ann is not a lead of this store"):
                ann.predict(*args, api_name=api_name)


def test_lead_sees_agreement_adjudicates_exports_and_pushes(team, tmp_path, hub):
    path, users = team
    store = open_store(path)
    store.set_blind_mode(False, actor="lead")
    store.assign("lead", k=2, tasks=["grading", "staging"])
    store.close()
    with review_server(path, users, export_dir=str(tmp_path / "exports")) as url:
        ann, bob, lead = sign_in(url, "ann"), sign_in(url, "bob"), sign_in(url, "lead")
        grading, staging = (["grading"], ["pending"], [], False), (["staging"], ["pending"], [], False)
        for client, action, reason in ((ann, "accept", None), (bob, "reject", "ambiguous")):
            screen(client, *grading)
            verdict(client, action, reason=reason, filters=grading)
        for client in (ann, bob):                                       # agreement on the staging pairs
            screen(client, *staging)
            for _ in range(2):
                verdict(client, "accept", filters=staging)
        text, by_task, everyone, blind = lead.predict(api_name="/lead_stats")
        assert "percent agreement" in text and blind is False and by_task["headers"][0] == "task"
        assert {row[0] for row in everyone["data"]} == {"ann", "bob", "lead"}
        queue = lead.predict(api_name="/adjudication_queue")
        assert len(queue["data"]) == 1 and queue["data"][0][3] == "needs_adjudication"
        pair_id = queue["data"][0][0]
        opened = named(lead.predict(pair_id, api_name="/open_pair"), OPENED)
        assert "ann review accepted" in opened["header"] and "bob review rejected (ambiguous)" in opened["header"]
        result = lead.predict("edited", opened["question"], "", "Grade 2, adjudicated.", None, "settled",
                              api_name="/adjudicate")
        assert result[0]["data"] == [] and f"Adjudicated pair {pair_id}: edited" in result[-1]
        with pytest.raises(Exception, match="export name '../x'"):
            lead.predict("../x", api_name="/export")
        summary = lead.predict("curated", api_name="/export")
        assert summary["pairs"] == 3 and summary["export_folder"] == str(tmp_path / "exports" / "curated")
        pushed = lead.predict("curated", "tester/review-tab-export", True, api_name="/push")
        assert pushed["repo_id"] == "tester/review-tab-export" and sum(pushed["splits"].values()) == 3
    assert "README.md" in hub.state.files("tester/review-tab-export", repo_type="dataset")
    store = open_store(path)
    final = next(p for p in store.final_pairs() if p.pair_id == pair_id)
    assert final.answer == "Grade 2, adjudicated." and final.status == "adjudicated"
    assert [a.action for a in store.audit_log(actor="lead")][-2:] == ["export", "push"]
    store.close()
