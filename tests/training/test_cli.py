"""`wsi-llava train` and `wsi-llava push-model` on the command line."""

import json

import pytest

import wsi_llava_cli
from tests.training.fixtures import config_dict, write_config
from training.cli import EXIT_LEAKAGE, main


def test_train_command_runs_a_stage_with_overrides_logs_and_pushes(tmp_path, bench, base_checkpoint, hub, capsys):
    path = write_config(tmp_path / "tiny.yaml", config_dict(tmp_path, bench, base_checkpoint, 2))
    out = tmp_path / "cli-run"
    code = wsi_llava_cli.main(["train", "--stage", "2", "--config", str(path), "--train.max_steps", "3",
                               f"--train.output_dir={out}", "--train.tensorboard", "true", "--data.val_fraction",
                               "0.3", "--train.eval_strategy", "steps", "--train.eval_steps", "3",
                               "--push-to-hub", "tester/cli-stage2"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "[stage 2] step 3/3" in captured.err and "eval_loss" in captured.err          # console progress
    printed = json.loads(captured.out)
    assert printed["output_dir"] == str(out) and "eval_loss" in printed["metrics"] and printed["pushed"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3] and any("eval_loss" in r for r in rows)
    assert list((out / "tensorboard").glob("events.out.tfevents.*")) and not (out / "runs").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "trained" and summary["data"]["validation_split"].startswith("patient-level")
    assert {"README.md", "training_manifest.json", "trained_weights.safetensors"} <= set(hub.state.files("tester/cli-stage2"))


def test_dry_run_checks_everything_and_trains_nothing(tmp_path, bench, base_checkpoint, capsys):
    path = write_config(tmp_path / "c.yaml", config_dict(tmp_path, bench, base_checkpoint, 3))
    assert main(["--stage", "3", "--config", str(path), "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["trains"]["LoRA"] and plan["freezes"] == ["slide_encoder.*", "language_model.*"]
    assert plan["data"]["n_train"] == 32 and plan["unused_sections"] == ["alignment"]
    assert not (tmp_path / "run-stage3").exists()


def test_errors_are_one_line_without_traceback(tmp_path, capsys, bench, base_checkpoint):
    assert main(["--stage", "2", "--config", str(tmp_path / "missing.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("wsi-llava train: ") and "config file not found" in err and "Traceback" not in err
    path = write_config(tmp_path / "c.yaml", config_dict(tmp_path, bench, base_checkpoint, 2))
    assert main(["--stage", "2", "--config", str(path), "--data.features_root", str(tmp_path / "nope")]) == 1
    assert "data.features_root" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--stage", "4", "--config", str(path)])
    assert exit_info.value.code == 2


def test_check_leakage_reports_shared_patients(bench, capsys):
    files = [str(bench.folder / "Grading_train.json"), str(bench.folder / "1_Report_train.json")]
    assert main(["--check-leakage", *files]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"][0]["shared_patients"] == 8 and not report["leak_free"]
    assert main(["--check-leakage", *files, "--fail-on-leakage"]) == EXIT_LEAKAGE
    capsys.readouterr()
    assert main(["--check-leakage", str(bench.folder), "--per-file", "--split", "train"]) == 0
    assert len(json.loads(capsys.readouterr().out)["sets"]) == 4
