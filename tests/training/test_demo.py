"""`wsi-llava train --demo`: the one-command CPU try-out works in a fresh clone (no ../shared, no downloads)."""

import json
import shutil

import pytest

from modeling.checkpoints import load_model
from training.cli import main
from training.demo import run_demo, write_demo_data
from training.errors import TrainingError
from wsi_bench.files import read_benchmark


def test_demo_data_is_valid_wsi_bench_with_a_features_file_per_slide(tmp_path):
    written = write_demo_data(tmp_path, n_slides=6)
    items = read_benchmark(written["bench"], split="train")
    assert len(items) == 6 * 5 and {item.task for item in items} >= {"report_generation", "staging_choice"}
    slides = {item.image for item in items}
    assert len(slides) == 6
    for image in slides:
        assert (tmp_path / "h5" / image).with_suffix(".h5").is_file()


def test_demo_runs_the_three_stages_chained_and_merges(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)                   # as in a fresh clone: relative runs/ folder
    report = run_demo(tmp_path / "runs" / "demo", max_steps=2)
    assert [report["stages"][stage]["steps"] for stage in (1, 2, 3)] == [2, 2, 2]
    assert report["synthetic"] is True
    merged = load_model(report["merged_model"], device="cpu")
    assert merged.is_trained
    with pytest.raises(TrainingError, match="earlier demo run.*nothing is overwritten"):
        run_demo(tmp_path / "runs" / "demo", max_steps=1)
    for stage in ("stage1", "stage2", "stage3", "stage3-merged"):
        shutil.rmtree(tmp_path / "runs" / "demo" / stage)
    again = run_demo(tmp_path / "runs" / "demo", max_steps=1)       # the written data is reused
    assert again["data"].get("reused") is True and again["stages"][3]["steps"] == 1


def test_the_demo_flag_is_one_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("training.demo.run_demo", lambda root: {"root": str(root), "synthetic": True})
    assert main(["--demo"]) == 0
    assert json.loads(capsys.readouterr().out) == {"root": "runs/demo", "synthetic": True}
