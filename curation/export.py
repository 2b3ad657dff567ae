"""Export the settled pairs of a review store as a `datasets.DatasetDict` split by patient, on disk.

Pairs whose final verdict is accepted or edited (directly, or after adjudication) are exported with
their final text. Each TCGA patient goes to one split, chosen by a salted hash of the patient id (stable
when pairs are added later). Written: Parquet per split (`data/`), WSI-Bench LLaVA JSON per task and
split (`llava/`), the official JSONL layout (`jsonl/`), the dataset card (`README.md`) and `summary.json`.
The folder is assembled under a temporary name and swapped in at the end. Lead only. Run it with
`wsi-llava curate export --store S --out DIR --as LEAD`, or:

    result = export_dataset(store, "curated/", actor="lead")      # result["dataset"] is the DatasetDict
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from common.atomic import atomic_write_json
from curation.dataset_card import render_card
from curation.errors import CurationError
from curation.store.review_store import FinalPair, ReviewStore, final_record
from wsi_bench.tasks import METADATA_TO_TASK, TASKS_BY_ID

SPLITS = ("train", "validation", "test")


@dataclass
class ExportSettings:
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: str = "wsi-llava-curation"
    name: str = "WSI-Bench-style curated VQA"
    licence: str = "other"

    def __post_init__(self) -> None:
        if not (0 <= self.validation_fraction < 1 and 0 <= self.test_fraction < 1
                and self.validation_fraction + self.test_fraction < 1):
            raise CurationError("validation and test fractions must be in [0, 1) and sum to less than 1, got "
                                f"{self.validation_fraction} and {self.test_fraction}.")


def split_of(patient_id: str, settings: ExportSettings) -> str:
    digest = hashlib.sha256(f"{settings.seed}:{patient_id}".encode("utf-8")).hexdigest()
    position = int(digest[:13], 16) / 16 ** 13
    if position < settings.test_fraction:
        return "test"
    if position < settings.test_fraction + settings.validation_fraction:
        return "validation"
    return "train"


def features():
    from datasets import Features, List, Value

    text = Value("string")
    return Features({
        "id": text, "image": text, "slide_id": text, "patient_id": text, "task": text, "capability": text,
        "answer_format": text, "question": text, "answer": text,
        "conversations": List({"from": text, "value": text}),
        "final_verdict": text, "review_status": text, "n_reviews": Value("int32"), "reviewers": List(text),
        "origin": text, "generator_model": text, "prompt_version": text, "source_report_sha256": text,
        "created_at": text, "uses_enrichment": Value("bool"), "inferred_answer": Value("bool"),
        "checks_failed": text})


def dataset_row(pair: FinalPair) -> dict:
    return {"id": pair.record_id, "image": pair.image, "slide_id": pair.slide_id, "patient_id": pair.patient_id,
            "task": pair.task, "capability": pair.capability, "answer_format": pair.answer_format,
            "question": pair.question, "answer": pair.answer,
            "conversations": final_record(pair)["conversations"], "final_verdict": pair.final_verdict,
            "review_status": pair.status, "n_reviews": pair.n_reviews, "reviewers": pair.reviewers,
            "origin": pair.origin, "generator_model": pair.generator_model, "prompt_version": pair.prompt_version,
            "source_report_sha256": pair.source_report_sha256, "created_at": pair.created_at,
            "uses_enrichment": pair.uses_enrichment, "inferred_answer": pair.inferred_answer,
            "checks_failed": pair.checks_failed}


def build_dataset_dict(pairs: list[FinalPair], settings: ExportSettings):
    """The DatasetDict (splits with no pair are left out) and the pairs of each split."""
    from datasets import Dataset, DatasetDict

    by_split: dict[str, list[FinalPair]] = defaultdict(list)
    for pair in pairs:
        by_split[split_of(pair.patient_id, settings)].append(pair)
    dd = DatasetDict({split: Dataset.from_list([dataset_row(p) for p in by_split[split]], features=features())
                      for split in SPLITS if by_split[split]})
    return dd, by_split


_FIRST_METADATA = {}
for _meta, _task in METADATA_TO_TASK.items():
    _FIRST_METADATA.setdefault(_task, _meta)


def _official_row(pair: FinalPair, aspect: str) -> dict:
    metadata = aspect if aspect else _FIRST_METADATA.get(pair.task, TASKS_BY_ID[pair.task].file_stem)
    return {"question_id": pair.record_id, "image": pair.image, "question": pair.question, "T-answer": pair.answer,
            "metadata": metadata}


def _write_files(folder: Path, dd, by_split: dict[str, list[FinalPair]], aspects: dict[int, str]) -> None:
    (folder / "data").mkdir(parents=True, exist_ok=True)
    for split, dataset in dd.items():
        dataset.to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
        per_task: dict[str, list[dict]] = defaultdict(list)
        for pair in by_split[split]:
            per_task[pair.task].append(final_record(pair))
        for task, records in per_task.items():
            atomic_write_json(folder / "llava" / f"{TASKS_BY_ID[task].file_stem}_{split}.json", records)
        lines = [json.dumps(_official_row(p, aspects.get(p.pair_id, "")), ensure_ascii=False) for p in by_split[split]]
        (folder / "jsonl").mkdir(parents=True, exist_ok=True)
        (folder / "jsonl" / f"WSI-Bench-{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def export_dataset(store: ReviewStore, out_dir: str | Path, actor: str, settings: ExportSettings | None = None,
                   repo_id: str | None = None) -> dict:
    """Write the export folder; returns {"dataset": DatasetDict, "summary": dict, "path": Path}."""
    settings = settings or ExportSettings()
    store.require_lead(actor)
    out = Path(out_dir).resolve()
    pairs = store.final_pairs()
    if not pairs:
        raise CurationError(f"{store.label}: no accepted or edited pair to export yet (see "
                            "`wsi-llava curate review-stats`).")
    stats = store.stats()
    dd, by_split = build_dataset_dict(pairs, settings)
    patients = {split: {p.patient_id for p in by_split[split]} for split in by_split}
    overlap = [(a, b) for i, a in enumerate(SPLITS) for b in SPLITS[i + 1:] if patients.get(a, set()) & patients.get(b, set())]
    assert not overlap, f"patients in two splits: {overlap}"
    split_counts = {split: dict(Counter(p.task for p in by_split[split])) for split in SPLITS}
    exported = {p.pair_id for p in pairs}
    excluded = {k: v for k, v in stats["by_status"].items() if k not in ("accepted", "edited", "adjudicated") and v}
    adjudicated_out = stats["by_status"].get("adjudicated", 0) - sum(1 for p in pairs if p.status == "adjudicated")
    if adjudicated_out:
        excluded["adjudicated_rejected"] = adjudicated_out
    provenance = {"source_reports": len({p.source_report_sha256 for p in pairs if p.source_report_sha256}),
                  "generator_models": sorted({p.generator_model for p in pairs}),
                  "prompt_versions": sorted({p.prompt_version for p in pairs}),
                  "origins": dict(Counter(p.origin for p in pairs)),
                  "uses_enrichment": sum(p.uses_enrichment for p in pairs),
                  "checks_failed": sum(1 for p in pairs if p.checks_failed)}
    summary = {"store": store.label, "pairs": len(pairs), "splits": split_counts,
               "patients": {s: len(v) for s, v in patients.items()}, "excluded": excluded,
               "empty_splits_left_out": [s for s in SPLITS if s not in dd], "provenance": provenance,
               "review": {"by_status": stats["by_status"], "agreement": stats["agreement"]},
               "settings": vars(settings)}
    aspects = _aspects(store, exported)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_files(tmp, dd, by_split, aspects)
        (tmp / "README.md").write_text(render_card(settings.name, split_counts, provenance, summary["review"],
                                                   excluded, settings.licence, repo_id), encoding="utf-8")
        atomic_write_json(tmp / "summary.json", summary)
        _swap_in(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    store.record_action(actor, "export", {"path": str(out), "pairs": len(pairs), "splits": split_counts})
    return {"dataset": dd, "summary": summary, "path": out}


def _aspects(store: ReviewStore, pair_ids: set[int]) -> dict[int, str]:
    from sqlalchemy import select

    from curation.store.schema import PairRow
    with store.db.read() as s:
        return {pid: aspect for pid, aspect in s.execute(select(PairRow.id, PairRow.aspect)) if pid in pair_ids and aspect}


def _swap_in(new: Path, out: Path) -> None:
    """Replace `out` by `new` so that a crash leaves either the old or the new export, never a mix."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        if not (out / "summary.json").exists():
            raise CurationError(f"{out} exists and is not an export folder (no summary.json); choose another --out.")
        os.replace(out, old)
    os.replace(new, out)
    shutil.rmtree(old, ignore_errors=True)
