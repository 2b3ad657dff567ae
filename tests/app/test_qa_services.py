"""The Slide Q&A tab's libraries without a server: upload sandbox, path confinement, WSI-Bench examples
(local and Hub features), live scoring, the model manager's failure and fallback, secret redaction."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from ui.qa.examples import ExampleCatalog
from evaluation.errors import EvaluationError
from evaluation.judge_types import JudgeConfig
from ui.qa.live_scoring import LiveScorer
from modeling.errors import ModelError
from ui.qa.model_manager import FAILED_STATE, READY, ModelManager, ModelSpec
from ui.qa.sessions import SlideSessions
from ui.qa.upload_sandbox import PathNotAllowedError, UploadError, UploadSandbox, confine, folder_bytes


@pytest.fixture
def sandbox(tmp_path) -> UploadSandbox:
    (tmp_path / "incoming").mkdir()
    return UploadSandbox(tmp_path / "uploads", max_bytes=200_000, incoming_roots=[tmp_path / "incoming"])


def incoming(sandbox: UploadSandbox, name: str, data: bytes) -> Path:
    folder = sandbox.incoming_roots[0] / os.urandom(4).hex()
    folder.mkdir()
    path = folder / name
    path.write_bytes(data)
    return path


def zipped(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buffer.getvalue()


DICM = b"\x00" * 128 + b"DICM" + b"\x00" * 64


def test_an_upload_moves_into_the_sessions_private_folder_and_replaces_the_last(sandbox):
    first = sandbox.accept("s1", incoming(sandbox, "a b(1).svs", b"II*\x00" + b"0" * 100))
    assert first == sandbox.root / "s1" / "slide" / "a_b_1_.svs" and first.is_file()
    assert stat.S_IMODE((sandbox.root / "s1").stat().st_mode) == 0o700
    second = sandbox.accept("s1", incoming(sandbox, "b.tif", b"II*\x00"))
    assert not first.exists() and second.is_file() and sandbox.sessions() == ["s1"]
    assert sandbox.discard("s1") and not (sandbox.root / "s1").exists() and sandbox.sessions() == []


@pytest.mark.parametrize("name, data, message", [
    ("report.pdf", b"%PDF", "report.pdf: not a slide type this server accepts"),
    ("big.svs", b"0" * 300_000, r"big.svs: 293.0 KB is over this server's upload limit of 195.3 KB"),
    ("bomb.zip", zipped({"a.dcm": b"0" * 300_000}), r"bomb.zip \(unpacked\): 293.0 KB is over"),
    ("slip.zip", zipped({"../../evil.dcm": DICM}), "member '../../evil.dcm' has an unsafe path"),
    ("abs.zip", zipped({"/etc/evil.dcm": DICM}), "member '/etc/evil.dcm' has an unsafe path"),
    ("link.zip", zipped({"a.dcm": DICM}, links={"b.dcm": "/etc/passwd"}), "member 'b.dcm' is a link"),
    ("two.zip", zipped({"a/1.dcm": DICM, "b/1.dcm": DICM}), "DICOM files in 2 folders"),
    ("none.zip", zipped({"notes.txt": b"x"}), "expected one slide .* found 0 slide files; the archive holds: notes.txt"),
    ("broken.zip", b"PK\x03\x04 not really", "not a readable .zip archive"),
])
def test_refused_uploads_name_the_rule(sandbox, name, data, message):
    with pytest.raises(UploadError, match=message):
        sandbox.accept("s1", incoming(sandbox, name, data))
    assert not list(sandbox.root.parent.rglob("evil.dcm"))          # nothing escaped the session folder


def test_zipped_multi_file_slides_and_dicom_folders(sandbox):
    dicom = sandbox.accept("s1", incoming(sandbox, "scan.zip", zipped({"scan/1.dcm": DICM, "scan/2.dcm": DICM})))
    assert dicom.is_dir() and sorted(p.name for p in dicom.iterdir()) == ["1.dcm", "2.dcm"]
    vms = sandbox.accept("s1", incoming(sandbox, "h.zip", zipped({"h.vms": b"x", "h-1.jpg": b"x", "h-2.jpg": b"x"})))
    assert vms.name == "h.vms"
    folder = sandbox.accept_folder("s2", [incoming(sandbox, "1.dcm", DICM), incoming(sandbox, "IM0002", DICM)])
    assert sorted(p.name for p in folder.iterdir()) == ["1.dcm", "IM0002"]
    with pytest.raises(UploadError, match="only .dcm or DICOM files.*notes.txt"):
        sandbox.accept_folder("s2", [incoming(sandbox, "1.dcm", DICM), incoming(sandbox, "notes.txt", b"x")])


def test_uploads_and_user_paths_outside_their_roots_are_refused(sandbox, tmp_path):
    outside = tmp_path / "elsewhere.svs"
    outside.write_bytes(b"II*\x00")
    with pytest.raises(PathNotAllowedError, match="uploaded file .* is outside the folders"):
        sandbox.accept("s1", outside)
    with pytest.raises(UploadError, match="invalid session id"):
        sandbox.accept("../s1", incoming(sandbox, "a.svs", b"II*\x00"))
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "ok.svs").write_bytes(b"x")
    (root / "escape.svs").symlink_to(outside)
    assert confine("sub/ok.svs", [root]) == (root / "sub" / "ok.svs").resolve()
    for attempt in ("../elsewhere.svs", str(outside), "escape.svs", "/etc/passwd"):
        with pytest.raises(PathNotAllowedError):
            confine(attempt, [root])


def test_ending_a_session_deletes_its_uploads_and_idle_sessions_are_swept(sandbox):
    sessions = SlideSessions(sandbox, idle_ttl_s=60)
    sessions.get("s1")
    sandbox.accept("s1", incoming(sandbox, "a.svs", b"II*\x00"))
    sessions.end("s1")
    assert sandbox.sessions() == [] and len(sessions) == 0
    sessions.get("s2").last_used -= 120                     # idle for two minutes
    sandbox.accept("s2", incoming(sandbox, "a.svs", b"II*\x00"))
    assert sessions.sweep() == ["s2"] and sandbox.sessions() == []
    sandbox.accept("old", incoming(sandbox, "a.svs", b"II*\x00"))   # a folder an earlier process left behind
    sandbox.accept("new", incoming(sandbox, "a.svs", b"II*\x00"))
    os.utime(sandbox.root / "old", (0, 0))
    assert sandbox.discard_older_than(3600) == ["old"] and sandbox.sessions() == ["new"]


def test_upload_paths_never_appear_in_messages(sandbox):
    path = sandbox.accept("s1", incoming(sandbox, "a.svs", b"II*\x00"))
    assert sandbox.public_message(f"{path}: truncated TIFF") == "a.svs: truncated TIFF"


def spread_over_sessions(sandbox: UploadSandbox, name: str, data: bytes, n_sessions: int) -> list[str]:
    """Upload `data` in `n_sessions` sessions; the refusals' messages (one per refused session)."""
    refusals = []
    for number in range(n_sessions):
        try:
            sandbox.accept(f"s{number}", incoming(sandbox, name, data))
        except UploadError as exc:
            refusals.append(str(exc))
    return refusals


def test_a_small_zip_no_longer_fills_the_disk_session_after_session(tmp_path):
    """The reported case: a ~25 KB zip (a slide and 4.6 MB of zeros) accepted in 10 sessions grew the upload
    folder to 46.5 MB. Its padding compresses 1000:1: refused by the ratio limit, nothing stays on disk."""
    (tmp_path / "incoming").mkdir()
    sandbox = UploadSandbox(tmp_path / "uploads", max_bytes=64 << 20, incoming_roots=[tmp_path / "incoming"])
    data = zipped({"slide.svs": b"II*\x00" + os.urandom(20_000), "padding.bin": bytes(4_600_000)})
    assert len(data) < 30_000
    refusals = spread_over_sessions(sandbox, "small.zip", data, 10)
    assert len(refusals) == 10 and refusals[0].startswith(
        "small.zip: member 'padding.bin' unpacks to 4,600,000 bytes from ") and "at most 100:1 is accepted" in refusals[0]
    assert folder_bytes(sandbox.root) == 0 and sandbox.sessions() == []
    # many small members, each under the 1 MB floor, are caught by the archive's overall ratio
    many = zipped({"slide.svs": b"II*\x00" + os.urandom(20_000)} | {f"part-{i}.bin": bytes(1_000_000) for i in range(30)})
    with pytest.raises(UploadError, match=r"many.zip: it unpacks to 30,020,004 bytes from [\d,]+ \([\d,]+:1\); at "
                                          r"most 100:1 is accepted .*--max-zip-ratio"):
        sandbox.accept("s1", incoming(sandbox, "many.zip", many))
    relaxed = UploadSandbox(tmp_path / "uploads", max_bytes=64 << 20, incoming_roots=[tmp_path / "incoming"],
                            max_ratio=2000)
    assert relaxed.accept("s1", incoming(sandbox, "small.zip", data)).name == "slide.svs"


def test_all_sessions_share_one_upload_quota(tmp_path):
    (tmp_path / "incoming").mkdir()
    sandbox = UploadSandbox(tmp_path / "uploads", max_bytes=200_000, incoming_roots=[tmp_path / "incoming"],
                            quota_bytes=350_000)
    slide = b"II*\x00" + os.urandom(100_000)
    refusals = spread_over_sessions(sandbox, "a.svs", slide, 10)
    assert sandbox.sessions() == ["s0", "s1", "s2"] and len(refusals) == 7
    assert refusals[0] == ("a.svs: this server's uploads hold 293.0 KB of the 341.8 KB all sessions may use together, "
                           "and this upload needs 97.7 KB more. Try again later (uploads are deleted when their browser "
                           "tab closes); the server's operator sets the quota (--upload-quota-gb).")
    assert folder_bytes(sandbox.root) <= 350_000
    assert sandbox.accept("s0", incoming(sandbox, "b.svs", slide)).name == "b.svs"   # replacing its own: fits
    with pytest.raises(UploadError, match="all sessions may use together"):               # zips count unpacked
        sandbox.accept("s3", incoming(sandbox, "c.zip", zipped({"c.svs": slide})))
    with pytest.raises(UploadError, match="all sessions may use together"):
        sandbox.accept_folder("s3", [incoming(sandbox, "1.dcm", DICM + os.urandom(99_000))])
    sandbox.discard("s1")                                                               # a tab closed: room again
    assert sandbox.accept("s3", incoming(sandbox, "c.zip", zipped({"c.svs": slide}))).name == "c.svs"
    assert UploadSandbox(tmp_path / "u2", 1, []).quota_bytes == pytest.approx(
        shutil.disk_usage(tmp_path).free / 2, rel=0.05)                                # default: half the free space


def folders_zip(n_folders: int, zip64: bool = False, monkeypatch=None) -> bytes:
    buffer = io.BytesIO()
    if zip64:                     # write zip64 end records, as archives of over 65,535 entries have
        monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 5)
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("slide/a.svs", b"II*\x00")
        for number in range(n_folders):
            zf.writestr(zipfile.ZipInfo(f"slide/folder-{number}/"), b"")
    if zip64:
        monkeypatch.undo()
    return buffer.getvalue()


def test_every_zip_entry_counts_folders_too_before_zipfile_lists_them(sandbox, monkeypatch):
    """Reported: folder entries did not count toward the member limit (a 27 MB zip of 300k folders took 159 MB
    to list). Here the limit is 50, and the archive is refused before zipfile lists anything."""
    import ui.qa.upload_sandbox as upload_sandbox

    small, listed = folders_zip(10), folders_zip(60)
    as_zip64 = folders_zip(60, zip64=True, monkeypatch=monkeypatch)
    assert b"PK\x06\x06" in as_zip64 and b"PK\x06\x06" not in listed
    lying = bytearray(listed)                     # an end record that claims one entry: the directory is walked
    end = lying.rfind(b"PK\x05\x06")
    lying[end + 8:end + 12] = (1).to_bytes(2, "little") * 2
    monkeypatch.setattr(upload_sandbox, "MAX_ARCHIVE_MEMBERS", 50)
    assert sandbox.accept("s1", incoming(sandbox, "small.zip", small)).name == "a.svs"

    def no_listing(*args, **kwargs):
        raise AssertionError("zipfile listed an archive that is over the entry limit")

    monkeypatch.setattr(zipfile, "ZipFile", no_listing)
    for name, data, message in (
            ("folders.zip", listed, r"folders.zip: 61 entries \(files and folders\); at most 50 are accepted\."),
            ("zip64.zip", bytes(as_zip64), r"zip64.zip: 61 entries \(files and folders\)"),
            ("lying.zip", bytes(lying), r"lying.zip: more than 50 entries \(files and folders\)")):
        with pytest.raises(UploadError, match=message):
            sandbox.accept("s1", incoming(sandbox, name, data))
    monkeypatch.setattr(upload_sandbox, "MAX_CENTRAL_DIRECTORY_BYTES", 300)
    with pytest.raises(UploadError, match=r"small.zip: a central directory of 667 bytes; at most 300 are accepted\."):
        sandbox.accept("s1", incoming(sandbox, "small.zip", small))
    assert sandbox.sessions() == []               # refused archives leave nothing behind


def test_the_upload_limits_reach_the_sandbox(qa_data, tmp_path):
    from app import build_services
    from tests.app.conftest import qa_config

    services = build_services(qa_config(qa_data, "--upload-dir", str(tmp_path / "a"), "--upload-quota-gb", "0.5",
                                        "--max-zip-ratio", "20"))
    assert services.sandbox.quota_bytes == 512 << 20 and services.sandbox.max_ratio == 20
    automatic = build_services(qa_config(qa_data, "--upload-dir", str(tmp_path / "b")))
    assert automatic.sandbox.quota_bytes == pytest.approx(shutil.disk_usage(tmp_path).free / 2, rel=0.05)
    assert automatic.sandbox.max_ratio == 100


# -- WSI-Bench examples ---------------------------------------------------------------------------------
def test_examples_are_the_benchmark_slides_with_features(qa_data):
    catalog = ExampleCatalog(str(qa_data.benchmark), str(qa_data.features), split=None, max_slides=1)
    examples = catalog.load()
    assert [e.slide_id for e in examples] == ["S1"] and catalog.report.n_with_features == 2
    s1 = catalog.get("S1")
    assert [item.task for item in s1.items] == ["grading", "report_generation", "diagnosis_choice", "prognosis_yes_no"]
    assert catalog.features_file(s1) == (qa_data.features / "TCGA-XX" / "S1.pt").resolve()
    with pytest.raises(EvaluationError, match="none of the 5 slides .* has a slide-token"):
        ExampleCatalog(str(qa_data.benchmark), str(qa_data.outside), split=None).load()


def test_a_benchmark_image_path_cannot_reach_outside_the_features_root(tmp_path):
    root = tmp_path / "features"
    root.mkdir()
    (tmp_path / "stolen.pt").write_bytes(b"secret")
    bench = tmp_path / "Grading_test.json"
    bench.write_text(json.dumps([{"id": "x", "image": "../stolen.pt", "conversations": [
        {"from": "human", "value": "<image>\nGrade?"}, {"from": "gpt", "value": "Grade 2."}]}]))
    with pytest.raises(EvaluationError, match="none of the 1 slides"):
        ExampleCatalog(str(bench), str(root), split=None).load()


def test_examples_from_a_hub_dataset_download_on_demand(hub, qa_data):
    tokens = (qa_data.features / "TCGA-XX" / "S2.pt").read_bytes()
    hub.state.upload("tester/WSIBench-pt", {"TCGA-XX/S2.pt": tokens, "README.md": "features"}, repo_type="dataset")
    catalog = ExampleCatalog(str(qa_data.benchmark), "tester/WSIBench-pt", split=None)
    assert [e.slide_id for e in catalog.load()] == ["S2"]
    assert catalog.features_file(catalog.get("S2")).read_bytes() == tokens
    with pytest.raises(EvaluationError, match="cannot list the Hub dataset tester/missing"):
        ExampleCatalog(str(qa_data.benchmark), "tester/missing", split=None).load()


def test_live_scores_closed_questions_by_answer_extraction(qa_data):
    catalog = ExampleCatalog(str(qa_data.benchmark), str(qa_data.features), split=None)
    catalog.load()
    choice = next(item for item in catalog.get("S1").items if item.task == "diagnosis_choice")
    score = LiveScorer(JudgeConfig("offline")).score(choice, "The answer is B) Adenocarcinoma.")
    assert score.accuracy["correct"] is True and score.accuracy["extracted"] == "B" and not score.approximate
    wrong = LiveScorer(JudgeConfig("offline")).score(choice, "A")
    assert wrong.accuracy["correct"] is False


# -- models ------------------------------------------------------------------------------------------------
def test_an_unreachable_hub_fails_at_once_and_says_offline(qa_data, tmp_path, monkeypatch):
    import time

    from huggingface_hub import constants

    from common.hub import settle_hub_access
    from ui.qa.model_manager import load_configured
    from tests.app.browser import free_port

    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{free_port()}")     # nothing listens there
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert settle_hub_access([str(qa_data.benchmark), "wsi-llava-tiny-random"]) is None   # nothing on the Hub
    assert constants.HF_HUB_OFFLINE is False
    assert "cannot be reached" in settle_hub_access(["Lucas-yuc/WSI-LLaVA-7b"])
    assert constants.HF_HUB_OFFLINE is True                 # restored by monkeypatch after the test
    started = time.monotonic()
    with pytest.raises(ModelError, match="not in the local cache and the Hub is unreachable"):
        load_configured(ModelSpec("Lucas-yuc/WSI-LLaVA-7b", device="cpu", convert_dir=tmp_path / "models"))
    with pytest.raises(EvaluationError, match="Hub dataset Lucas-yuc/WSI-Bench: the Hugging Face Hub cannot be "
                                              "reached .*point --benchmark"):
        ExampleCatalog("Lucas-yuc/WSI-Bench", "Lucas-yuc/WSIBench-pt").load()
    assert time.monotonic() - started < 20                  # no minute of connection retries


def test_a_model_that_cannot_load_says_why_and_the_demo_is_only_loaded_on_request(tmp_path):
    manager = ModelManager(ModelSpec(str(tmp_path / "missing-checkpoint"), device="cpu")).start()
    manager._main.wait(30)
    status = manager.status()
    assert status.state == FAILED_STATE and "neither an existing folder nor a Hub id" in status.detail
    with pytest.raises(ModelError, match="neither an existing folder"):
        manager.get()
    assert manager.status(demo=True).state == "not started"
    demo = manager.wait(demo=True, timeout_s=120)
    assert manager.status(demo=True).state == READY and not demo.is_trained and "UNTRAINED" in demo.banner()


def test_a_published_llava_checkpoint_goes_through_conversion_and_its_failure_is_explained(hub, tmp_path):
    spec = ModelSpec("Lucas-yuc/WSI-LLaVA-7b", device="cpu", convert_dir=tmp_path / "models")
    manager = ModelManager(spec).start()
    manager._main.wait(30)
    # the loopback Hub has no such repository: the conversion step reports it, nothing is written
    assert "Lucas-yuc/WSI-LLaVA-7b: no such Hub repository" in manager.status().detail
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


# -- secrets -------------------------------------------------------------------------------------------------
def test_secret_values_are_redacted_from_messages_and_logs(monkeypatch, caplog):
    from ui.errors import install_log_redaction, redact, register_secret_env

    monkeypatch.setenv("MY_JUDGE_KEY_VAR", "judge-secret-value")
    register_secret_env("MY_JUDGE_KEY_VAR")
    text = f"token {os.environ['HF_TOKEN']} key judge-secret-value and hf_abcdefghijklmnopqrstu"
    assert redact(text) == "token [HF_TOKEN hidden] key [MY_JUDGE_KEY_VAR hidden] and [token hidden]"
    install_log_redaction()
    with caplog.at_level(logging.INFO):
        logging.getLogger("wsi_llava.test").info("calling with %s", os.environ["HF_TOKEN"])
    assert "[HF_TOKEN hidden]" in caplog.text and os.environ["HF_TOKEN"] not in caplog.text


def test_two_sessions_uploading_the_same_bytes_both_get_the_slide(sandbox):
    """Gradio caches uploads by content hash: both sessions' uploads can be the same cached file."""
    shared = incoming(sandbox, "same.svs", b"II*\x00" + b"1" * 100)
    first = sandbox.accept("s1", shared)
    second = sandbox.accept("s2", shared)
    assert first.read_bytes() == second.read_bytes() == shared.read_bytes()
    sandbox.discard("s1")
    assert second.is_file() and shared.is_file()         # Gradio's copy is left to Gradio's own clean-up


def test_a_published_lora_release_is_converted_onto_its_known_base(tmp_path, monkeypatch):
    """The released adapters name a training-machine folder as their base; the app cannot ask for --base."""
    import modeling.convert_llava
    from ui.qa.model_manager import load_configured

    calls = []

    def fake_convert(source, folder, **kwargs):
        calls.append((source, kwargs["base"]))
        raise ModelError("stop here")

    monkeypatch.setattr(modeling.convert_llava, "convert", fake_convert)
    with pytest.raises(ModelError, match="stop here"):
        load_configured(ModelSpec("Lucas-yuc/wsi-llava-v1.5-7b-e1", device="cpu", convert_dir=tmp_path / "models"))
    assert calls == [("Lucas-yuc/wsi-llava-v1.5-7b-e1", "liuhaotian/llava-v1.5-7b")]
