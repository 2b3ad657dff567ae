"""The review tab's logic without a server: the local users file (salted PBKDF2, its command line), sign-in
checks and throttling, Hugging Face sign-in mapping, and the pure helpers (highlighting, MCQ options,
edits, queue navigation, thumbnails confined to their folder)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from curation.store.status import ReviewInputError
from curation.store.review_store import ReviewStore
from curation.store.users import UsersFile, UsersFileError, main
from tests.curation.conftest import imported_pair
from ui.review.flow import Draft, PairState, edit_fields, next_pair_id, reload_keeping_draft
from ui.review.render import highlight, parse_options, thumbnail_path
from ui.review.session import (
    MAX_FAILURES_PER_CLIENT,
    ReviewSettings,
    SignInError,
    SignInThrottle,
    StoreHandle,
    StoreUnavailableError,
    huggingface_sign_in,
    password_sign_in,
)


def test_users_file_keeps_salted_hashes_only(tmp_path):
    path = tmp_path / "users.json"
    users = UsersFile.load(path, missing_ok=True)
    users.set_password("ann", "correct horse", iterations=1000)
    users.set_password("bob", "correct horse", iterations=1000)
    users.save()
    text = path.read_text()
    assert "correct horse" not in text and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    entries = json.loads(text)["users"]
    assert entries["ann"]["salt"] != entries["bob"]["salt"] and entries["ann"]["hash"] != entries["bob"]["hash"]
    loaded = UsersFile.load(path)
    assert loaded.verify("ann", "correct horse") and not loaded.verify("ann", "wrong horse")
    assert not loaded.verify("nobody", "correct horse")
    with pytest.raises(UsersFileError, match="already in"):
        loaded.set_password("ann", "another password")
    with pytest.raises(UsersFileError, match="at least 8 characters"):
        loaded.set_password("cat", "short")
    with pytest.raises(UsersFileError, match="annotator name '../x'"):
        loaded.set_password("../x", "long enough password")
    path.write_text('{"users": {}}')
    with pytest.raises(UsersFileError, match=f"users file {path} is not a"):
        UsersFile.load(path)


def test_users_command_line(tmp_path, monkeypatch, capsys):
    path = str(tmp_path / "users.json")
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("a long password\n"))
    assert main(["--users-file", path, "add", "ann", "--password-stdin", "--iterations", "1000"]) == 0
    assert main(["--users-file", path, "list"]) == 0 and capsys.readouterr().out.strip().endswith("ann")
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("a long password\n"))
    assert main(["--users-file", path, "add", "ann", "--password-stdin"]) == 1
    assert "pass --replace" in capsys.readouterr().err
    assert main(["--users-file", path, "remove", "ann"]) == 0 and UsersFile.load(path).users == {}


@pytest.fixture
def store_with_ann(tmp_path):
    store = ReviewStore.open(str(tmp_path / "store.sqlite"))
    store.save_imported([imported_pair(0)], "logic")
    store.add_annotator("lead", role="lead")
    store.add_annotator("ann", actor="lead")
    yield store
    store.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def users_of_ann(tmp_path):
    users = UsersFile.load(tmp_path / "users.json", missing_ok=True)
    for name in ("ann", "zed"):
        users.set_password(name, f"{name} password", iterations=1000)
    users.save()
    return ReviewSettings("unused.sqlite", users_file=str(users.path))


@pytest.fixture
def hashes(monkeypatch):
    """The PBKDF2 computations of sign-ins, as their iteration counts (run with 1000 rounds, for speed)."""
    import curation.store.users as users_module

    done, real = [], users_module.hash_password
    monkeypatch.setattr(users_module, "hash_password",
                        lambda password, salt, iterations: done.append(iterations) or real(password, salt, 1000))
    return done


def test_password_sign_in_checks_the_list_and_the_store(store_with_ann, users_of_ann, tmp_path, hashes):
    from curation.store.users import DEFAULT_ITERATIONS

    throttle = SignInThrottle(FakeClock())
    session = password_sign_in(users_of_ann, store_with_ann, "ann", "ann password", "10.0.0.1", throttle)
    assert (session.name, session.role, session.via) == ("ann", "annotator", "password")
    with pytest.raises(SignInError, match="zed signed in with a password, but is not an annotator of this review "
                                          "store") as refused:
        password_sign_in(users_of_ann, store_with_ann, "zed", "zed password", "10.0.0.1", throttle)
    assert str(tmp_path) not in str(refused.value) and "store.sqlite" not in str(refused.value)
    hashes.clear()
    for name in ("ann", "nobody"):              # a wrong password and an unknown name: same message, same work
        with pytest.raises(SignInError, match=f"Wrong name or password for {name}\\.") as refused:
            password_sign_in(users_of_ann, store_with_ann, name, "guess", "10.0.0.1", throttle)
        assert str(tmp_path) not in str(refused.value)
    assert hashes == [1000, DEFAULT_ITERATIONS]     # ann's own rounds; the unknown name the default's
    with pytest.raises(SignInError, match="No users file is configured"):
        password_sign_in(ReviewSettings("unused.sqlite"), store_with_ann, "ann", "ann password", "10.0.0.1", throttle)


def test_one_client_failing_cannot_lock_out_another_and_waits_out_its_window(store_with_ann, users_of_ann, hashes):
    """Reported: five wrong passwords for a name locked that annotator out for everyone."""
    clock = FakeClock()
    throttle = SignInThrottle(clock)
    for _ in range(MAX_FAILURES_PER_CLIENT):
        with pytest.raises(SignInError, match="Wrong name or password for ann"):
            password_sign_in(users_of_ann, store_with_ann, "ann", "guess", "10.0.0.66", throttle)
    hashes.clear()
    for name, password in (("ann", "guess"), ("ann", "ann password"), ("zed", "zed password")):
        with pytest.raises(SignInError, match=r"Too many failed sign-ins from your address; try again in 301 s"):
            password_sign_in(users_of_ann, store_with_ann, name, password, "10.0.0.66", throttle)
    assert hashes == []                                          # refused without any PBKDF2 work
    assert password_sign_in(users_of_ann, store_with_ann, "ann", "ann password", "10.0.0.7", throttle).name == "ann"
    clock.now += 150
    with pytest.raises(SignInError, match="try again in 151 s"):
        password_sign_in(users_of_ann, store_with_ann, "ann", "ann password", "10.0.0.66", throttle)
    clock.now += 150                                             # the window has passed
    assert password_sign_in(users_of_ann, store_with_ann, "ann", "ann password", "10.0.0.66", throttle).name == "ann"


def test_everyone_together_is_throttled_too(store_with_ann, users_of_ann, hashes):
    clock = FakeClock()
    throttle = SignInThrottle(clock, max_attempts=20, global_window_s=60)
    for number in range(20):                                     # 20 addresses, one guess each
        with pytest.raises(SignInError, match="Wrong name or password"):
            password_sign_in(users_of_ann, store_with_ann, "ann", "guess", f"10.0.1.{number}", throttle)
    clock.now += 10
    with pytest.raises(SignInError, match=r"Too many sign-ins on this server right now; try again in 51 s"):
        password_sign_in(users_of_ann, store_with_ann, "ann", "ann password", "10.0.2.1", throttle)
    assert len(hashes) == 20
    clock.now += 50
    assert password_sign_in(users_of_ann, store_with_ann, "ann", "ann password", "10.0.2.1", throttle).name == "ann"


def test_password_checks_run_one_at_a_time_whoever_asks(users_of_ann, monkeypatch):
    """Reported: 48 attempts from 8 clients slowed other users 6-15x (PBKDF2 on every core at once)."""
    import threading
    import time

    import curation.store.users as users_module

    inside, most, entered, release = [0], [0], threading.Event(), threading.Event()
    lock = threading.Lock()

    def slow_hash(password, salt, iterations):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        entered.set()
        release.wait(timeout=30)
        with lock:
            inside[0] -= 1
        return "0" * 64

    monkeypatch.setattr(users_module, "hash_password", slow_hash)
    throttle = SignInThrottle(FakeClock())
    refusals = []

    def attempt(number: int) -> None:
        try:
            password_sign_in(users_of_ann, None, "ann", "guess", f"10.0.3.{number}", throttle)
        except SignInError as exc:
            refusals.append(str(exc))

    threads = [threading.Thread(target=attempt, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    assert entered.wait(timeout=30)
    time.sleep(0.5)                               # time for the others to start hashing, were they allowed to
    release.set()
    for thread in threads:
        thread.join(timeout=60)
    assert most[0] == 1 and len(refusals) == 8 and all("Wrong name or password" in r for r in refusals)


def test_store_and_users_file_problems_name_no_server_path(store_with_ann, tmp_path, caplog):
    missing = ReviewSettings("unused.sqlite", users_file=str(tmp_path / "secret-place" / "users.json"))
    with pytest.raises(SignInError, match="The sign-in list of this server cannot be read") as refused:
        password_sign_in(missing, store_with_ann, "ann", "ann password", "10.0.0.1", SignInThrottle(FakeClock()))
    assert "secret-place" not in str(refused.value) and "secret-place" in caplog.text     # the log has it
    (tmp_path / "no-such-folder").write_text("a file, not a folder")
    handle = StoreHandle(str(tmp_path / "no-such-folder" / "store.sqlite"))
    with pytest.raises(StoreUnavailableError, match="The review store cannot be opened on this server") as refused:
        handle.get()
    assert "no-such-folder" not in str(refused.value) and "no-such-folder" in caplog.text


def test_hugging_face_sign_in_maps_the_username_to_the_store(store_with_ann, monkeypatch):
    assert huggingface_sign_in(store_with_ann, "lead").is_lead
    with pytest.raises(SignInError, match="Sign in with Hugging Face first"):
        huggingface_sign_in(store_with_ann, None)
    with pytest.raises(SignInError, match="mallory signed in with Hugging Face, but is not an annotator"):
        huggingface_sign_in(store_with_ann, "mallory")
    monkeypatch.delenv("SYSTEM", raising=False)
    assert not ReviewSettings("s.sqlite").wants_huggingface
    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setenv("OAUTH_CLIENT_ID", "client-id")
    assert ReviewSettings("s.sqlite").wants_huggingface
    assert not ReviewSettings("s.sqlite", sign_in="password").wants_huggingface
    with pytest.raises(SignInError, match="sign_in must be one of"):
        ReviewSettings("s.sqlite", sign_in="anonymous")


def test_highlight_merges_and_clips_spans():
    assert highlight("abcdefgh", [(5, 7), (1, 3), (2, 4), (6, 99)], "g") == [
        ("a", None), ("bcd", "g"), ("e", None), ("fgh", "g")]
    assert highlight("abc", [], "g") == [("abc", None)]


def test_edits_send_only_changed_fields_and_check_choice_answers():
    state = PairState(1, 3, "Which grade?", {"A": "1", "B": "2"}, "A", False)
    assert edit_fields(state, Draft("Which grade?", "A) 1\nB) 2", "B")) == {"answer": "B"}
    assert edit_fields(state, Draft("Which grade?", "A) 1\nB) two", "A")) == {"options": {"A": "1", "B": "two"}}
    with pytest.raises(ReviewInputError, match="one option letter"):
        edit_fields(state, Draft("Which grade?", "A) 1\nB) 2", "C"))
    with pytest.raises(ReviewInputError, match="Nothing was edited"):
        edit_fields(state, Draft("Which grade? ", "A) 1\nB. 2", "A"))
    with pytest.raises(ReviewInputError, match="line 2"):
        parse_options("A) 1\nsecond")
    kept = reload_keeping_draft(_view(state), state, Draft("Which grade?", "A) 1\nB) 2", "B"))
    assert kept[1].answer == "B" and kept[2]
    assert next_pair_id([3, 5, 9], 5) == 9 and next_pair_id([3, 5, 9], 9) == 3
    assert next_pair_id([3, 5, 9], 4) == 5 and next_pair_id([3, 5, 9], 4, -1) == 3 and next_pair_id([], 1) is None


def _view(state: PairState):
    class View:
        pair_id, version, question, options, answer, can_undo = (state.pair_id, state.version + 1, state.question,
                                                                  state.options, state.answer, False)
        slide_id = state.slide_id
    return View()


def test_statistics_without_ratings_yet_read_as_dashes():
    from ui.review.render import stats_markdown

    text = stats_markdown({
        "pairs": 3, "reports": 0, "by_status": {"pending": 3}, "blind_mode": True, "audit_entries": 4,
        "checks_failed": {}, "agreement": {"cohen_kappa_pairs": [{"annotators": ["ann", "bob"], "kappa": None,
                                                                  "n_items": 0}],
                                           "n_items_multiply_rated": 0, "percent_agreement": None,
                                           "cohen_kappa_mean": None, "fleiss_kappa": None,
                                           "fleiss_raters_per_item": None, "fleiss_n_items": 0}})
    assert "None" not in text and "percent agreement — · mean Cohen's kappa —" in text and "ann / bob: —" in text


def test_thumbnails_never_leave_their_folder(tmp_path):
    (tmp_path / "thumbs").mkdir()
    (tmp_path / "thumbs" / "S1.png").write_bytes(b"png")
    (tmp_path / "secret.png").write_bytes(b"secret")
    (tmp_path / "thumbs" / "S2.png").symlink_to(tmp_path / "secret.png")
    root = str(tmp_path / "thumbs")
    assert thumbnail_path(root, "S1").endswith("S1.png")
    assert thumbnail_path(root, "S2") is None and thumbnail_path(root, "../secret") is None
    assert thumbnail_path(None, "S1") is None


def test_open_handler_asks_the_store_and_answers_with_component_dicts(tmp_path):
    import gradio as gr

    from ui.review import handlers
    from ui.review.session import ReviewSession
    from ui.review.tab import build_review_screen

    path = tmp_path / "store.sqlite"
    store = ReviewStore.open(str(path))
    store.save_imported([imported_pair(i) for i in range(2)], "fixture")
    store.add_annotator("lead", role="lead")
    for name in ("ann", "bob"):
        store.add_annotator(name, actor="lead")
    store.assign("lead", k=1, annotators=["ann"])
    first = store.queue("ann")[0].pair_id
    store.close()
    with gr.Blocks():
        screen = build_review_screen(ReviewSettings(str(path)))
    try:
        ann, bob, lead = (ReviewSession(name, role, "password") for name, role in
                          (("ann", "annotator"), ("bob", "annotator"), ("lead", "lead")))
        opened = handlers.open_by_id(screen, ann, [], first)
        assert set(opened) == {*screen.pair_outputs(), screen.message}
        assert opened[screen.pair_state].pair_id == first and opened[screen.message] == f"Opened pair {first}."
        with pytest.raises(gr.Error, match="is not in your queue"):                    # ann's pair, blind mode
            handlers.open_by_id(screen, bob, [], first)
        assert handlers.open_by_id(screen, lead, [], first)[screen.pair_state].pair_id == first
        with pytest.raises(gr.Error, match="no pair 999 in this store"):
            handlers.open_by_id(screen, lead, [], 999)
    finally:
        screen.handle.close()
