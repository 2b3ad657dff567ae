"""`evaluate predict` sharded by --shard, RANK/WORLD_SIZE and SLURM job arrays: disjoint shares of the slides,
resumable shard journals, one merged predictions file and summary equal to a one-process run; a one-process
run after a sharded one merges the journals; --out names with glob characters; stale shard reports."""

import json

import pytest

from common.shards import SLURM_VARIABLES
from evaluation.cli import main
from tests.evaluation.fixtures import write_benchmark, write_released_tokens
from tests.helpers.tiny_models import save_tiny_checkpoint

SLIDES = ("TCGA-XX/S1", "TCGA-XX/S2", "TCGA-XX/S3", "TCGA-XX/S4", "TCGA-BRCA/S5")


@pytest.fixture
def setup(tmp_path, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", *SLURM_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    write_benchmark(tmp_path / "bench")
    save_tiny_checkpoint(tmp_path / "ckpt")
    features = write_released_tokens(tmp_path / "features", *SLIDES[:4], seeded=True)   # S5: no inputs, ever

    def predict(out, *extra):
        return main(["predict", "--model", str(tmp_path / "ckpt"), "--benchmark", str(tmp_path / "bench"),
                     "--features-root", str(features), "--out", str(out), "--max-new-tokens", "4", "--device", "cpu",
                     *extra])
    return tmp_path, predict


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def keyed(path):
    return {(r["task"], r["question_id"]): r for r in rows(path)}


def test_shards_are_disjoint_resumable_and_merge_into_one_file(setup, capsys, monkeypatch):
    tmp_path, predict = setup
    assert predict(tmp_path / "single.jsonl") == 3                # S5 has no inputs: exit 3, listed
    capsys.readouterr()
    out = tmp_path / "sharded.jsonl"
    assert predict(out, "--shard", "0/3") == 3                    # S5 sorts first: shard 0's
    first = json.loads(capsys.readouterr().out)
    assert first["shard"] == "0/3" and first["shard_source"] == "--shard"
    assert first["merged"]["complete"] is False and first["merged"]["n_predicted"] == first["n_answered"]
    assert rows(out) == rows(tmp_path / "sharded.shard-0-of-3.jsonl")       # merged so far: shard 0's rows
    monkeypatch.setenv("RANK", "1")                                         # torchrun / accelerate
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert predict(out) == 0
    assert json.loads(capsys.readouterr().out)["shard_source"] == "RANK/WORLD_SIZE"
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    # SLURM job array --array=1-3: task 3 is shard 2 of 3
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    for name, value in (("COUNT", "3"), ("MIN", "1"), ("MAX", "3"), ("STEP", "1")):
        monkeypatch.setenv(f"SLURM_ARRAY_TASK_{name}", value)
    assert predict(out, "--batch-size", "3") == 0                           # batched, too
    last = json.loads(capsys.readouterr().out)
    assert (last["shard"], last["shard_source"], last["batch_size"]) == ("2/3", "SLURM array", 3)
    # disjoint shares of whole slides, together every answered item once
    journals = [keyed(tmp_path / f"sharded.shard-{i}-of-3.jsonl") for i in range(3)]
    images = [{r["image"] for r in journal.values()} for journal in journals]
    assert all(images) and sum(len(i) for i in images) == len(set().union(*images)) == 4
    assert sum(len(j) for j in journals) == len(keyed(out))
    # one merged file equal to the one-process run, in benchmark order, and one complete summary
    assert keyed(out) == keyed(tmp_path / "single.jsonl")
    merged = json.loads((tmp_path / "sharded.summary.json").read_text())
    assert merged["merged"] and merged["complete"] is False and merged["n_remaining"] == 2     # S5: no inputs
    assert {m["image"] for m in merged["missing_inputs"]} == {"TCGA-BRCA/S5.pt"}
    assert sorted(s["shard"] for s in merged["shards"]) == ["0/3", "1/3", "2/3"]
    assert merged["n_predicted"] == 8 and merged["settings"] == rows(out)[0]["settings"]
    # a re-run of a shard resumes: nothing left to answer
    assert predict(out, "--shard", "2/3") == 0
    again = json.loads(capsys.readouterr().out)
    assert again["n_answered"] == 0 and again["n_done_before"] == last["n_answered"]
    assert keyed(out) == keyed(tmp_path / "single.jsonl")


def test_another_shard_count_resumes_from_every_journal(setup, capsys):
    tmp_path, predict = setup
    out = tmp_path / "p.jsonl"
    assert predict(out, "--shard", "0/2") == 3
    done = len(rows(out))
    capsys.readouterr()
    assert predict(out) == 3                               # one process picks up the rest (S5 still missing)
    report = json.loads(capsys.readouterr().out)
    assert report["n_done_before"] == done and report["n_answered"] == 8 - done
    assert len(keyed(out)) == 8


def test_bad_shard_values_are_one_line_errors(setup, capsys, monkeypatch):
    tmp_path, predict = setup
    assert predict(tmp_path / "p.jsonl", "--shard", "3/3") == 1
    assert "need 0 <= i < n" in capsys.readouterr().err
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "5")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MAX", "7")
    assert predict(tmp_path / "p.jsonl") == 1
    err = capsys.readouterr().err
    assert "not one range" in err and "Traceback" not in err


def test_one_process_run_after_an_interrupted_shard_merges_every_journal(setup, capsys, monkeypatch):
    from common import journal

    tmp_path, predict = setup
    out = tmp_path / "p.jsonl"
    assert predict(out, "--shard", "0/2") == 3                     # S5 (no inputs), S2, S4
    first = len(rows(tmp_path / "p.shard-0-of-2.jsonl"))
    original, written = journal.JournalWriter.write, []

    def write_then_stop(self, row):                                # shard 1 preempted after its 2nd answer
        original(self, row)
        written.append(row)
        if len(written) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(journal.JournalWriter, "write", write_then_stop)
    assert predict(out, "--shard", "1/2") == 130
    monkeypatch.setattr(journal.JournalWriter, "write", original)
    assert len(rows(tmp_path / "p.shard-1-of-2.jsonl")) == 2
    capsys.readouterr()
    assert predict(out) == 3                                       # one process: the rest of shard 1
    report = json.loads(capsys.readouterr().out)
    assert report["n_done_before"] == first + 2 and report["n_answered"] == 8 - first - 2
    assert len(keyed(out)) == 8                                    # every answered item, the journals' too
    summary = json.loads((tmp_path / "p.summary.json").read_text())
    assert summary["merged"] and summary["n_predicted"] == 8 and summary["n_remaining"] == 2
    assert [m["image"] for m in summary["missing_inputs"]] == ["TCGA-BRCA/S5.pt"] * 2


def test_an_out_name_with_glob_characters_merges_and_resumes(setup, capsys):
    tmp_path, predict = setup
    out = tmp_path / "preds[a].jsonl"
    assert [predict(out, "--shard", f"{index}/2") for index in range(2)] == [3, 0]     # S5 is shard 0's
    capsys.readouterr()
    summary = json.loads((tmp_path / "preds[a].summary.json").read_text())
    assert len(keyed(out)) == 8 and summary["n_predicted"] == 8 and len(summary["shards"]) == 2
    assert predict(out, "--shard", "0/2") == 3                    # resumes from its own journal
    again = json.loads(capsys.readouterr().out)
    assert again["n_answered"] == 0 and again["n_done_before"] == len(rows(tmp_path / "preds[a].shard-0-of-2.jsonl"))
    assert len(keyed(out)) == 8


def test_the_merged_summary_lists_each_open_item_as_its_newest_report_says(setup, capsys):
    tmp_path, predict = setup
    out = tmp_path / "p.jsonl"
    for index in range(2):
        predict(out, "--shard", f"{index}/2")                      # S5: no inputs
    (tmp_path / "features" / "TCGA-BRCA").mkdir(exist_ok=True)
    (tmp_path / "features" / "TCGA-BRCA" / "S5.pt").write_bytes(b"not a tensor")    # present now, unreadable
    for index in range(3):
        predict(out, "--shard", f"{index}/3")
    summary = json.loads((tmp_path / "p.summary.json").read_text())
    assert summary["n_remaining"] == 2 and summary["n_failed"] == 2 and summary["n_missing_inputs"] == 0
    assert summary["missing_inputs"] == [] and {f["image"] for f in summary["failures"]} == {"TCGA-BRCA/S5.pt"}


def test_a_settings_clash_names_the_shard_journal_that_holds_the_rows(setup, capsys):
    tmp_path, predict = setup
    out = tmp_path / "p.jsonl"
    assert predict(out, "--shard", "0/2") == 3
    out.unlink()                                                   # deleting --out alone does not start over
    capsys.readouterr()
    assert predict(out, "--max-new-tokens", "5") == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "p.shard-0-of-2.jsonl") in err and "Traceback" not in err
