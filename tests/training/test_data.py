"""Training data: item loading, slide-input resolution, report pairs, patient splits, leakage."""

import json

import pytest

from modeling.slide_inputs import SLIDE_TOKENS, TILE_FEATURES
from training.data import (
    cross_task_leakage,
    load_items,
    read_reports_file,
    report_pairs_from_items,
    resolve_slide_inputs,
    split_by_patient,
    task_counts,
)
from training.errors import TrainingError


def slide(patient: int, n: int = 1) -> str:
    return f"TCGA-AA-{patient:04d}-01Z-00-DX{n}.0000"


def record(qid, slide_id, question="Q?", answer="A."):
    return {"id": qid, "image": f"TCGA-BRCA/{slide_id}.pt",
            "conversations": [{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": answer}]}


@pytest.fixture
def bench(tmp_path):
    folder = tmp_path / "bench"
    folder.mkdir()
    (folder / "Grading_train.json").write_text(json.dumps(
        [record(f"g{i}", slide(i)) for i in range(6)]
        + [{"id": "broken", "image": "x.pt", "conversations": [{"from": "gpt", "value": "A"}]}]))
    (folder / "1_Report_train.json").write_text(json.dumps(
        [record(f"r{i}", slide(i), "Describe.", f"Report of slide {i}.") for i in range(3)]))
    return folder


def test_load_items_reports_problems_instead_of_dropping_silently(bench):
    items, problems = load_items(bench, split="train")
    assert task_counts(items) == {"grading": 6, "report_generation": 3}
    assert len(problems) == 1 and "broken" in problems[0]
    with pytest.raises(TrainingError, match="no WSI-Bench .json/.jsonl files for split 'test'"):
        load_items(bench, split="test")
    with pytest.raises(TrainingError, match="no WSI-Bench items for split 'train' and tasks"):
        load_items(bench, split="train", tasks=["Stage"])


def test_resolve_slide_inputs_finds_pt_and_h5_and_reports_missing(bench, tmp_path):
    items, _ = load_items(bench, split="train")
    root = tmp_path / "features"
    (root / "TCGA-BRCA").mkdir(parents=True)
    (root / "TCGA-BRCA" / f"{slide(0)}.pt").write_bytes(b"x")
    (root / f"{slide(1)}.h5").write_bytes(b"x")
    (root / "TCGA-BRCA" / f"{slide(2)}.h5").write_bytes(b"x")
    with pytest.raises(TrainingError, match=r"3 slide\(s\) \(3 item\(s\)\).*--skip-missing-features"):
        resolve_slide_inputs(items, root)
    resolved = resolve_slide_inputs(items, root, skip_missing=True)
    assert resolved.n_items_missing == 3 and len(resolved.items) == 6
    kinds = {image.split("/")[1][:12]: ref.kind for image, ref in resolved.inputs.items()}
    assert kinds == {"TCGA-AA-0000": SLIDE_TOKENS, "TCGA-AA-0001": TILE_FEATURES, "TCGA-AA-0002": TILE_FEATURES}
    assert resolved.report()["n_slides_missing_inputs"] == 3
    with pytest.raises(TrainingError, match="is not a folder"):
        resolve_slide_inputs(items, tmp_path / "nope")


def test_report_pairs_from_items_and_files(bench, tmp_path):
    items, _ = load_items(bench, split="train")
    pairs = report_pairs_from_items(items)
    assert [(p.slide_id, p.text) for p in pairs] == [(slide(i), f"Report of slide {i}.") for i in range(3)]
    jsonl = tmp_path / "reports.jsonl"
    jsonl.write_text(json.dumps({"slide_id": slide(9), "text": " Carcinoma. "}) + "\n")
    assert read_reports_file(jsonl)[0].text == "Carcinoma."
    csv_file = tmp_path / "reports.csv"
    csv_file.write_text(f"slide_id,text\n{slide(8)},Adenoma.\n{slide(7)},\n")
    with pytest.raises(TrainingError, match="row 2 needs non-empty 'slide_id' and 'text'"):
        read_reports_file(csv_file)


def test_split_by_patient_keeps_each_patient_on_one_side():
    slides = [slide(p, n) for p in range(200) for n in (1, 2, 3)]
    train, val = split_by_patient(slides, val_fraction=0.2, seed=3)
    assert train | val == set(slides) and not train & val
    assert not {s[:12] for s in train} & {s[:12] for s in val}
    assert 0.1 < len(val) / len(slides) < 0.3
    assert split_by_patient(slides, 0.2, seed=3) == (train, val)          # deterministic
    assert split_by_patient(slides, 0.2, seed=4) != (train, val)
    with pytest.raises(TrainingError, match="val_fraction"):
        split_by_patient(slides, 1.0)


def test_cross_task_leakage_counts_shared_patients(bench):
    items, _ = load_items(bench, split="train")
    grading = [i for i in items if i.task == "grading"]
    reports = [i for i in items if i.task == "report_generation"]
    report = cross_task_leakage({"grading": grading, "report": reports})
    assert report["pairs"][0]["shared_patients"] == 3 and not report["leak_free"]
    assert cross_task_leakage({"a": grading[:2], "b": grading[4:]})["leak_free"]
