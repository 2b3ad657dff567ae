"""`evaluate predict` sharded by --shard, RANK/WORLD_SIZE and SLURM job arrays: disjoint shares of the slides,
resumable shard journals, one merged predictions file and summary equal to a one-process run."""

import json

import pytest

from common.shards import SLURM_VARIABLES
from evaluation.cli import main
from tests.evaluation.fixtures import write_benchmark
from tests.helpers.tiny_models import TINY_NUM_SLIDE_TOKENS, TINY_SLIDE_TOKEN_DIM, save_tiny_checkpoint, write_slide_tokens_pt

SLIDES = ("TCGA-XX/S1", "TCGA-XX/S2", "TCGA-XX/S3", "TCGA-XX/S4", "TCGA-BRCA/S5")


@pytest.fixture
def setup(tmp_path, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", *SLURM_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    write_benchmark(tmp_path / "bench")
    save_tiny_checkpoint(tmp_path / "ckpt")
    features = tmp_path / "features"
    for seed, slide in enumerate(SLIDES[:4]):       # S5 has no inputs: a missing item in every run
        (features / slide).parent.mkdir(parents=True, exist_ok=True)
        write_slide_tokens_pt(features / f"{slide}.pt", num_tokens=TINY_NUM_SLIDE_TOKENS, dim=TINY_SLIDE_TOKEN_DIM,
                              padded_from=None, seed=seed)

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
