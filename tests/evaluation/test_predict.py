"""`wsi-llava evaluate predict` with a tiny random checkpoint: rows, missing inputs, resume, then scoring."""

import json

import pytest

from evaluation.cli import main
from evaluation.predictions import load_predictions
from tests.evaluation.fixtures import write_benchmark, write_released_tokens
from tests.helpers.tiny_models import save_tiny_checkpoint


def test_predict_writes_rows_reports_missing_inputs_and_resumes(tmp_path, capsys):
    bench = write_benchmark(tmp_path / "bench")
    checkpoint = save_tiny_checkpoint(tmp_path / "ckpt")
    # S3, S4 (LLaVA files) and S5 (official JSONL) have no slide inputs
    features = write_released_tokens(tmp_path / "features", "TCGA-XX/S1", "TCGA-XX/S2")
    out = tmp_path / "preds.jsonl"
    args = ["predict", "--model", str(checkpoint), "--benchmark", str(bench), "--features-root", str(features),
            "--out", str(out), "--max-new-tokens", "3", "--device", "cpu"]
    assert main(args + ["--limit", "3"]) == 0                     # the first three all have inputs
    first = json.loads(capsys.readouterr().out)
    assert first["n_items"] == 10 and first["n_answered"] == 3 and first["model_is_trained"] is False
    assert main(args) == 3                                          # resumes; 4 without inputs: exit 3
    report = json.loads(capsys.readouterr().out)
    assert report["n_done_before"] == 3 and report["n_answered"] == 3
    assert report["n_missing_inputs"] == 4 and report["n_remaining"] == 4
    assert {m["image"] for m in report["missing_inputs"]} == {"TCGA-XX/S3.pt", "TCGA-XX/S4.pt", "TCGA-BRCA/S5.pt"}
    assert json.loads((tmp_path / "preds.summary.json").read_text())["n_missing_inputs"] == 4
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6 and len({(r["task"], r["question_id"]) for r in rows}) == 6
    assert set(rows[0]) >= {"question_id", "image", "task", "capability", "question", "reference", "prediction",
                            "model", "settings"}
    assert rows[0]["model"] == "tiny-test-model"
    # every row records the official defaults it ran with: llava_v1 prompt, sampling at 0.2, the seed, the dtype
    settings = rows[0]["settings"]
    assert {k: settings[k] for k in ("profile", "conversation_template", "do_sample", "temperature", "top_p",
                                     "num_beams", "no_repeat_ngram_size", "max_new_tokens", "repetition_penalty",
                                     "seed", "dtype", "quantization")} == {
        "profile": "official", "conversation_template": "llava_v1", "do_sample": True, "temperature": 0.2,
        "top_p": None, "num_beams": 1, "no_repeat_ngram_size": 3, "max_new_tokens": 3, "repetition_penalty": None,
        "seed": 0, "dtype": "float32", "quantization": None}
    assert all(row["settings"] == settings for row in rows)
    # another generation setting into the same file is refused
    assert main(args + ["--temperature", "0.7"]) == 1
    assert "already holds predictions" in capsys.readouterr().err
    # the rows score as they are
    items, load_report = load_predictions(out)
    assert len(items) == 6 and not load_report.unmatched
    assert main(["score", str(out), "--out", str(tmp_path / "eval"), "--judge", "offline"]) == 0
    assert "6 items scored" in capsys.readouterr().out


def test_predict_errors_are_messages(tmp_path, capsys):
    bench = write_benchmark(tmp_path / "bench")
    assert main(["predict", "--model", str(tmp_path / "nope"), "--benchmark", str(bench), "--features-root",
                 str(tmp_path), "--out", str(tmp_path / "p.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "--model" in err and "Traceback" not in err
    assert main(["predict", "--model", "x", "--benchmark", str(bench), "--features-root", str(tmp_path / "none"),
                 "--out", str(tmp_path / "p.jsonl")]) == 1
    assert "not a folder" in capsys.readouterr().err


def test_predict_profile_template_and_seed_are_options_and_recorded(tmp_path, capsys):
    """Sampling is seeded per answer: the same run twice gives the same answers."""
    bench = write_benchmark(tmp_path / "bench")
    checkpoint = save_tiny_checkpoint(tmp_path / "ckpt")
    features = write_released_tokens(tmp_path / "features", "TCGA-XX/S1")
    answers = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.jsonl"
        assert main(["predict", "--model", str(checkpoint), "--benchmark", str(bench), "--features-root",
                     str(features), "--out", str(out), "--max-new-tokens", "4", "--device", "cpu",
                     "--profile", "fork-8714afc", "--conv-template", "vicuna_v1", "--seed", "5"]) == 3
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        answers.append([row["prediction"] for row in rows])
    settings = rows[0]["settings"]
    assert (settings["profile"], settings["conversation_template"], settings["seed"]) == ("fork-8714afc", "vicuna_v1", 5)
    assert settings["repetition_penalty"] == 1.1 and settings["trim_answer"] and "\nUSER:" in settings["stop_words"]
    assert answers[0] == answers[1] and len(answers[0]) >= 2
    capsys.readouterr()
    assert main(["predict", "--model", str(checkpoint), "--benchmark", str(bench), "--features-root", str(features),
                 "--out", str(tmp_path / "c.jsonl"), "--temperature", "-1"]) == 1
    assert "temperature" in capsys.readouterr().err


@pytest.mark.parametrize("batch_size", ["1", "3"])
def test_too_long_questions_are_failed_items_in_the_summary_not_a_crash(tmp_path, capsys, batch_size):
    """One question over --max-question-chars, one whose prompt does not fit the model's context (here 512
    tokens): both are listed as failures naming both numbers; the other items are answered (one at a time
    and batched alike)."""
    bench = tmp_path / "bench"
    bench.mkdir()
    questions = {"S1-1": "What is the grade?", "S1-2": "Describe the grade. " * 300,       # 5,999 characters
                 "S1-3": "Describe the tumour cells. " * 60}                             # fits 4,000, not 512 tokens
    records = [{"id": qid, "image": "TCGA-XX/S1.pt", "conversations": [
        {"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": "Grade 2."}]}
        for qid, question in questions.items()]
    (bench / "Grading_test.json").write_text(json.dumps(records), encoding="utf-8")
    checkpoint = save_tiny_checkpoint(tmp_path / "ckpt", text_overrides={"max_position_embeddings": 512})
    features = write_released_tokens(tmp_path / "features", "TCGA-XX/S1")
    out = tmp_path / "preds.jsonl"
    assert main(["predict", "--model", str(checkpoint), "--benchmark", str(bench), "--features-root", str(features),
                 "--out", str(out), "--max-new-tokens", "3", "--device", "cpu", "--batch-size", batch_size]) == 3
    report = json.loads(capsys.readouterr().out)
    assert report["n_answered"] == 1 and report["n_failed"] == 2 and report["n_remaining"] == 2
    errors = {failure["question_id"]: failure["error"] for failure in report["failures"]}
    assert "The question has 5,999 characters; at most 4,000 are accepted (--max-question-chars" in errors["S1-2"]
    assert "over the model's context of 512" in errors["S1-3"] and "Ask a shorter question" in errors["S1-3"]
    assert json.loads((tmp_path / "preds.summary.json").read_text())["n_failed"] == 2
    assert [json.loads(line)["question_id"] for line in out.read_text().splitlines()] == ["S1-1"]
    with pytest.raises(SystemExit):
        main(["predict", "--model", str(checkpoint), "--benchmark", str(bench), "--features-root", str(features),
              "--out", str(out), "--max-question-chars", "0"])
    assert "--max-question-chars: must be a positive integer, got 0" in capsys.readouterr().err
