"""A tiny WSI-Bench written by the tests themselves (both released formats) and prediction rows for it."""

from __future__ import annotations

import json
from pathlib import Path

CHOICE_Q = ("What is the histological classification? A) Squamous cell carcinoma B) Adenocarcinoma "
            "C) Neuroendocrine tumor D) Small cell carcinoma")

# (file stem, id, question, answer)
LLAVA_ITEMS = [
    ("Grading", "S1-4", "What is the FIGO grading of this tumor?",
     "The tumor is classified as FIGO grade I. The glands are well differentiated with mild nuclear atypia."),
    ("Grading", "S2-4", "How would you grade this tumor?",
     "The tumor is graded as FIGO grade III. Solid growth dominates and nuclear pleomorphism is marked."),
    ("Diagnosis_choice", "S1-1", CHOICE_Q, "B"),
    ("Diagnosis_choice", "S2-1", CHOICE_Q, "A"),
    ("Diagnosis_choice", "S3-1", CHOICE_Q, "B \""),
    ("Prognosis_TF_question", "S1-1", "Is the prognosis good?", "No"),
    ("Prognosis_TF_question", "S4-1", "Is the prognosis good?", "Yes"),
    ("1_Report", "S1-1", "Describe the slide and give the likely diagnosis.",
     "Microscopic observation reveals an invasive ductal carcinoma with tubule formation. "
     "Lymphovascular invasion is present. The diagnosis is invasive ductal carcinoma, grade 2."),
]
OFFICIAL_ROWS = [
    {"question_id": "Stage_S5-1_1", "image": "TCGA-BRCA/S5.pt", "question": "What is the TNM stage?",
     "T-answer": "The TNM staging for this patient is T2 N0 M0.", "metadata": "Stage"},
    {"question_id": "Caption_S5-1_1", "image": "TCGA-BRCA/S5.pt", "question": "Describe the whole slide.",
     "T-answer": "The slide shows breast tissue with a high grade ductal carcinoma in situ and central necrosis.",
     "metadata": "Caption"},
]


def write_benchmark(folder: Path) -> Path:
    """LLaVA conversation JSON per task + one official JSONL, like the released test files."""
    folder.mkdir(parents=True, exist_ok=True)
    by_stem: dict[str, list] = {}
    for stem, qid, question, answer in LLAVA_ITEMS:
        slide = qid.split("-")[0]
        by_stem.setdefault(stem, []).append({"id": qid, "image": f"TCGA-XX/{slide}.pt", "conversations": [
            {"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": answer}]})
    for stem, records in by_stem.items():
        (folder / f"{stem}_test.json").write_text(json.dumps(records), encoding="utf-8")
    (folder / "WSI-Bench-test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in OFFICIAL_ROWS),
                                                 encoding="utf-8")
    return folder


def own_rows(predictions: dict | None = None) -> list[dict]:
    """This project's prediction rows for every fixture item; the prediction defaults to the reference."""
    predictions = predictions or {}
    rows = []
    for stem, qid, question, answer in LLAVA_ITEMS:
        rows.append({"question_id": qid, "image": f"TCGA-XX/{qid.split('-')[0]}.pt", "task": stem,
                     "capability": "ignored", "question": question, "reference": answer,
                     "prediction": predictions.get((stem, qid), answer), "model": "tiny", "settings": {}})
    for row in OFFICIAL_ROWS:
        rows.append({"question_id": row["question_id"], "image": row["image"], "task": row["metadata"],
                     "capability": "ignored", "question": row["question"], "reference": row["T-answer"],
                     "prediction": predictions.get((row["metadata"], row["question_id"]), row["T-answer"]),
                     "model": "tiny", "settings": {}})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_released_tokens(root: Path, *slides: str, seeded: bool = False) -> Path:
    """Released-layout slide tokens of the tiny model (`ROOT/<project>/<slide>.pt`, (576-like, dim), unpadded)
    for each "TCGA-XX/S1"-style slide; `seeded`: each slide its own random tokens (seed = its position)."""
    from tests.helpers.tiny_models import TINY_NUM_SLIDE_TOKENS, TINY_SLIDE_TOKEN_DIM, write_slide_tokens_pt

    for seed, slide in enumerate(slides):
        (root / slide).parent.mkdir(parents=True, exist_ok=True)
        write_slide_tokens_pt(root / f"{slide}.pt", num_tokens=TINY_NUM_SLIDE_TOKENS, dim=TINY_SLIDE_TOKEN_DIM,
                              padded_from=None, **({"seed": seed} if seeded else {}))
    return root
