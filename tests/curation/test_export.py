"""Export of settled pairs: DatasetDict split by patient, Parquet + LLaVA JSON + JSONL + card, lead only."""

import json

import pytest

from curation.errors import CurationError
from curation.export import ExportSettings, export_dataset, split_of
from curation.store.views import PermissionDenied
from wsi_bench.files import read_benchmark
from tests.curation.conftest import imported_pair


@pytest.fixture
def reviewed(store):
    rows = [imported_pair(i, patient=f"TCGA-P{i % 40:03d}-0001") for i in range(80)]
    rows += [{**imported_pair(100 + i, task="staging_choice", patient=f"TCGA-P{i:03d}-0001"),
              "answer_format": "choice", "question": "Which stage?", "answer": "A",
              "options": {"A": "T1", "B": "T2", "C": "T3", "D": "T4"}} for i in range(10)]
    store.save_imported(rows, "fixture")
    store.add_annotator("lead", role="lead")
    store.add_annotator("ann", actor="lead")
    for n, item in enumerate(store.queue("ann", limit=200)):
        if n % 10 == 3:
            store.submit_review(item.pair_id, "ann", "rejected", item.version, reason="factually_wrong")
        elif n % 10 == 5:
            store.submit_review(item.pair_id, "ann", "edited", item.version, answer=f"Edited answer {n}.")
        elif n % 10 != 7:                                                 # 7: left pending
            store.submit_review(item.pair_id, "ann", "accepted", item.version)
    return store


def test_export_splits_by_patient_and_writes_every_format(reviewed, tmp_path):
    from datasets import load_dataset

    settings = ExportSettings(validation_fraction=0.2, test_fraction=0.2)
    out = tmp_path / "export"
    result = export_dataset(reviewed, out, "lead", settings)
    dd, summary = result["dataset"], result["summary"]
    assert set(dd) == {"train", "validation", "test"} and summary["pairs"] == sum(d.num_rows for d in dd.values()) == 72
    assert summary["excluded"] == {"pending": 9, "rejected": 9}
    patients = {split: set(dd[split]["patient_id"]) for split in dd}
    assert not (patients["train"] & patients["test"] or patients["train"] & patients["validation"]
                or patients["validation"] & patients["test"])
    assert all(split_of(p, settings) == split for split, ps in patients.items() for p in ps)
    rows = [r for split in dd for r in dd[split]]
    assert sum(r["final_verdict"] == "edited" for r in rows) == 9
    assert all(r["answer"].startswith("Edited answer") for r in rows if r["final_verdict"] == "edited")
    assert {r["reviewers"][0] for r in rows} == {"ann"} and all(r["conversations"][1]["value"] == r["answer"] for r in rows)
    choice = next(r for r in rows if r["task"] == "staging_choice")
    assert choice["question"] == "Which stage? A) T1 B) T2 C) T3 D) T4"
    reloaded = load_dataset(str(out))                                   # the card's YAML configs find the Parquet
    assert {k: v.num_rows for k, v in reloaded.items()} == {k: v.num_rows for k, v in dd.items()}
    llava_items = read_benchmark(out / "llava")
    jsonl_items = read_benchmark(out / "jsonl")
    assert len(llava_items) == len(jsonl_items) == 72
    assert {i.task for i in llava_items} == {i.task for i in jsonl_items} == {"grading", "staging_choice"}
    assert sorted(p.name for p in (out / "llava").iterdir())[0] == "Grading_test.json"
    card = (out / "README.md").read_text()
    assert "split: validation" in card and "| grading |" in card and "TCGA" in card and "not for clinical" in card
    assert json.loads((out / "summary.json").read_text())["splits"] == summary["splits"]
    assert [a.action for a in reviewed.audit_log(actor="lead")][-1] == "export"


def test_export_is_lead_only_and_replaces_a_previous_export(reviewed, tmp_path):
    with pytest.raises(PermissionDenied):
        export_dataset(reviewed, tmp_path / "x", "ann")
    out = tmp_path / "export"
    export_dataset(reviewed, out, "lead")
    (out / "stale-file.txt").write_text("from an older export")
    export_dataset(reviewed, out, "lead")
    assert not (out / "stale-file.txt").exists() and (out / "summary.json").exists()
    (tmp_path / "not-an-export").mkdir()
    with pytest.raises(CurationError, match="not an export folder"):
        export_dataset(reviewed, tmp_path / "not-an-export", "lead")
