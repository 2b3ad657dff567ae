"""`evaluate score` sharded: each shard judges its share into its own journal; the last one writes the one
result, equal to a one-process run, with every shard's judge usage; failed judgements of another shard are
listed, not waited for, but a retry run waits for the shard retrying them, and no merge removes a journal that
a shard still appends to."""

import json

import pytest

from common.shards import SLURM_VARIABLES
from evaluation.claim_scores import MetricResult
from evaluation.cli import main
from evaluation.judge_types import ItemJudgement, JudgeConfig
from evaluation.offline_judge import OfflineJudge
from evaluation.scorer import ScoreConfig, run_scoring
from tests.evaluation.fixtures import own_rows, write_jsonl

PREDICTIONS = {("Grading", "S2-4"): "Completely unrelated text about radiotherapy schedules.",
               ("Diagnosis_choice", "S2-1"): "Adenocarcinoma"}
VOLATILE = ("elapsed_s", "n_reused", "n_judged", "created_at", "judge_stats")


@pytest.fixture(autouse=True)
def no_launcher_environment(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", *SLURM_VARIABLES):
        monkeypatch.delenv(name, raising=False)


def stable(value):
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def test_two_shards_write_the_one_process_result(tmp_path, capsys, monkeypatch):
    preds = write_jsonl(tmp_path / "preds.jsonl", own_rows(PREDICTIONS))
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    assert main(["score", str(preds), "--out", str(single), "--judge", "offline"]) == 0
    capsys.readouterr()
    assert main(["score", str(preds), "--out", str(sharded), "--judge", "offline", "--shard", "1/2"]) == 0
    assert "wait for other shards" in capsys.readouterr().out
    journal = sharded / "scores.partial.shard-1-of-2.jsonl"
    assert len(journal.read_text().splitlines()) == 2 and not (sharded / "summary.json").exists()   # items 1, 3 of 5
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")                 # --array=0-1: task 0 is shard 0 of 2
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "0")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MAX", "1")
    assert main(["score", str(preds), "--out", str(sharded), "--judge", "offline"]) == 0
    assert "10 items scored" in capsys.readouterr().out
    assert sorted(p.name for p in sharded.iterdir() if not p.name.startswith(".")) == [
        "scores.jsonl", "summary.json", "summary.md"]                    # journals merged and removed
    summary = json.loads((sharded / "summary.json").read_text())
    assert summary["run"]["n_judged"] == 5 and summary["run"]["n_reused"] == 0     # every shard's, as one process

    def scores(folder):
        return [stable(json.loads(line)) for line in (folder / "scores.jsonl").read_text().splitlines()]

    assert scores(sharded) == scores(single)
    assert stable(summary)["overall"] == stable(json.loads((single / "summary.json").read_text()))["overall"]


class _FailingJudge(OfflineJudge):
    """Fails every item: the shard's rows exist, with failed metrics."""

    def judge(self, items, on_result):
        for item in items:
            failed = MetricResult.failed("judge down", stage="claims")
            on_result(item, ItemJudgement(precision=failed, relevance=failed))


def test_failed_rows_of_another_shard_are_listed_not_waited_for(tmp_path):
    preds = write_jsonl(tmp_path / "preds.jsonl", own_rows())
    out = tmp_path / "out"
    first = ScoreConfig(predictions=preds, out_dir=out, judge=JudgeConfig(name="offline"), shard="0/2")
    waiting = run_scoring(first, judge=_FailingJudge(), emit=lambda m: None)
    assert waiting["waiting"] and waiting["n_judged"] == 3 and waiting["n_waiting"] == 2
    second = ScoreConfig(predictions=preds, out_dir=out, judge=JudgeConfig(name="offline"), shard="1/2")
    summary = run_scoring(second, emit=lambda m: None)
    assert "waiting" not in summary and summary["run"]["n_judged"] == 5           # 3 failed + 2
    # shard 0's failed judgements (both metrics of its 3 items) are listed, to retry with a re-run
    assert len(summary["failures"]) == 6 and len({f["question_id"] for f in summary["failures"]}) == 3
    (out / "scores.partial.shard-1-of-3.jsonl").write_text("")          # a stale journal and usage of 3 shards
    (out / "judge_stats.shard-1-of-3.json").write_text("{}")
    again = run_scoring(ScoreConfig(predictions=preds, out_dir=out, judge=JudgeConfig(name="offline")),
                        emit=lambda m: None)
    assert not again["failures"] and again["run"]["n_judged"] == 3 and again["run"]["n_reused"] == 2
    assert not list(out.glob("*.shard-*"))                              # one process merges and removes them all


def test_each_shard_has_its_own_judge_cache(tmp_path):
    from llm.client import LLMSettings

    def cache(shard):
        judge = JudgeConfig(name="openai", llm=LLMSettings())
        return ScoreConfig(predictions=tmp_path / "p.jsonl", out_dir=tmp_path / "out", judge=judge,
                           shard=shard).judge.llm.cache_path

    assert cache(None) == str(tmp_path / "out" / "judge_cache.sqlite")
    assert cache("1/4") == str(tmp_path / "out" / "judge_cache.shard-1-of-4.sqlite")   # never one SQLite on NFS


def config(preds, out, shard=None):
    return ScoreConfig(predictions=preds, out_dir=out, judge=JudgeConfig(name="offline"), shard=shard)


def quiet(message):
    pass


def test_every_shards_judge_usage_is_in_the_summary(tmp_path):
    preds = write_jsonl(tmp_path / "preds.jsonl", own_rows(PREDICTIONS))
    single = run_scoring(config(preds, tmp_path / "single"), emit=quiet)
    out = tmp_path / "sharded"
    assert run_scoring(config(preds, out, "0/2"), emit=quiet)["waiting"]
    assert [p.name for p in out.glob("judge_stats.*")] == ["judge_stats.shard-0-of-2.json"]
    summary = run_scoring(config(preds, out, "1/2"), emit=quiet)
    assert summary["judge_stats"] == single["judge_stats"] and single["judge_stats"]["sentences_embedded"] > 0
    assert (summary["run"]["n_judged"], summary["run"]["n_reused"]) == (5, 0)
    assert [(s["shard"], s["n_judged"]) for s in summary["run"]["shards"]] == [("0/2", 3), ("1/2", 2)]
    assert not list(out.glob("judge_stats.*")) and not list(out.glob("scores.partial*"))   # removed with them


def test_a_retry_run_waits_for_the_shard_that_retries(tmp_path):
    preds = write_jsonl(tmp_path / "preds.jsonl", own_rows())
    out = tmp_path / "out"
    run_scoring(config(preds, out, "0/2"), emit=quiet)
    first = run_scoring(config(preds, out, "1/2"), judge=_FailingJudge(), emit=quiet)
    assert len({f["question_id"] for f in first["failures"]}) == 2          # scores.jsonl lists shard 1's items
    # the retry run: shard 0 has nothing to retry, but its final would keep shard 1's failed rows
    retry = run_scoring(config(preds, out, "0/2"), emit=quiet)
    assert retry["waiting"] and retry["n_waiting"] == 2
    assert json.loads((out / "summary.json").read_text()) == first           # nothing final written
    summary = run_scoring(config(preds, out, "1/2"), emit=quiet)
    assert not summary["failures"] and summary["run"]["n_judged"] == 2 and summary["run"]["n_reused"] == 3


class _StopAfter(OfflineJudge):
    """Judges; after its first item runs `meanwhile`, after its second stops (a preempted job)."""

    def __init__(self, meanwhile):
        super().__init__()
        self.meanwhile, self.seen = meanwhile, []

    def judge(self, items, on_result):
        def hook(item, judgement):
            on_result(item, judgement)
            self.seen.append(self.meanwhile() if not self.seen else item)
            if len(self.seen) == 2:
                raise KeyboardInterrupt
        super().judge(items, hook)


def test_no_merge_removes_a_journal_a_shard_still_appends_to(tmp_path):
    preds = write_jsonl(tmp_path / "preds.jsonl", own_rows())
    out = tmp_path / "out"
    journal = out / "scores.partial.shard-0-of-2.jsonl"
    assert run_scoring(config(preds, out, "0/2"), judge=_FailingJudge(), emit=quiet)["waiting"]
    # shard 0 re-runs to retry its 3 failed items; meanwhile shard 1 finishes (its own failed rows count)
    judge = _StopAfter(lambda: run_scoring(config(preds, out, "1/2"), emit=quiet))
    with pytest.raises(KeyboardInterrupt):
        run_scoring(config(preds, out, "0/2"), judge=judge, emit=quiet)
    other = judge.seen[0]
    assert other["waiting"] and other["still_judging"] == [str(journal)]
    assert not (out / "scores.jsonl").exists() and len(journal.read_text().splitlines()) == 3 + 2   # kept
    summary = run_scoring(config(preds, out, "0/2"), emit=quiet)           # the rest: one item
    assert not summary["failures"] and not journal.exists()
