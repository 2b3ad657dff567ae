"""Training data: WSI-Bench items as `datasets`, their slide inputs, report pairs, patient-level splits.

- `load_items(source, split, tasks)`: WSI-Bench in either released format from a file, folder or Hub
  dataset id (through `wsi_bench.files`); malformed records are counted and reported.
- `resolve_slide_inputs(items, features_root, skip_missing)`: each item's `image` -> a released
  slide-token `.pt` or one of our features `.h5` files under the features root. Missing files are
  counted and reported; with `skip_missing` those items are left out (and still reported); they are
  never replaced by zeros.
- `report_pairs(...)`: slide id + report text for stages 1-2, from report-generation items or a
  reports file (JSONL/CSV with `slide_id` and `text`).
- `split_by_patient(...)`: deterministic train/validation split with no TCGA patient on both sides.
- `cross_task_leakage(...)`: which slides/patients of one file set also appear in another.

    items, problems = load_items("../shared/wsi-bench-train-small", split="train")
    inputs = resolve_slide_inputs(items, "features/", skip_missing=True)
    print(inputs.report())
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from wsi_bench.errors import BenchError
from common.jsonl import iter_jsonl
from wsi_bench.files import (
    BenchItem,
    patient_id_from_slide,
    read_benchmark,
)
from modeling.slide_inputs import (  # released .pt slide tokens and our features h5
    INPUT_KINDS,
    SUFFIX_KIND,
    find_slide_input,
    slide_input_candidates,
)
from training.errors import TrainingError


def load_items(source: str | Path, split: str | None = None, tasks: Sequence[str] | None = None
               ) -> tuple[list[BenchItem], list[str]]:
    """WSI-Bench items and the problems found (malformed records are skipped and listed, never hidden)."""
    problems: list[str] = []
    try:
        items = read_benchmark(source, split=split, tasks=tasks, problems=problems)
    except BenchError as exc:
        raise TrainingError(f"Cannot read WSI-Bench data from {source}: {exc}") from exc
    if not items:
        raise TrainingError(f"{source}: no WSI-Bench items" + (f" for split {split!r}" if split else "")
                            + (f" and tasks {list(tasks)}" if tasks else "") + ".")
    return items, problems


def items_to_dataset(items: Sequence[BenchItem]):
    """A `datasets.Dataset` of items (one row each; conversations kept as role/value dicts)."""
    from wsi_bench.files import items_to_dataset as to_dataset

    return to_dataset(items)


@dataclass(frozen=True)
class SlideInputRef:
    kind: str   # SLIDE_TOKENS | TILE_FEATURES
    path: Path


def find_slide_input_ref(features_root: str | Path, image: str,
                         kinds: Sequence[str] = INPUT_KINDS) -> SlideInputRef | None:
    path = find_slide_input(features_root, image, tuple(kinds))
    return SlideInputRef(SUFFIX_KIND[path.suffix], path) if path else None


@dataclass
class ResolvedInputs:
    items: list[BenchItem]                       # items whose slide inputs exist
    inputs: dict[str, SlideInputRef]             # image -> where its inputs are
    missing_images: list[str] = field(default_factory=list)
    n_items_missing: int = 0                     # items whose slide inputs are missing

    def report(self) -> dict:
        return {"n_items_with_inputs": len(self.items), "n_items_missing_inputs": self.n_items_missing,
                "n_slides_missing_inputs": len(self.missing_images),
                "missing_examples": self.missing_images[:10]}


def resolve_slide_inputs(items: Sequence[BenchItem], features_root: str | Path,
                         skip_missing: bool = False, kinds: Sequence[str] = INPUT_KINDS) -> ResolvedInputs:
    """Attach each item's slide inputs. Missing inputs raise `TrainingError` (count + examples + the
    flag to skip them) unless `skip_missing`, which leaves those items out and reports them.

    Items are anything with an `image` (BenchItem, ReportPair); `kinds` restricts the file types
    looked for (stage 1 takes tile features only)."""
    root = Path(features_root)
    if not root.is_dir():
        raise TrainingError(f"features root {root} is not a folder. Point it at the folder holding the "
                            "released slide-token .pt files or the features .h5 files.")
    found: dict[str, SlideInputRef | None] = {}
    for item in items:
        if item.image not in found:
            found[item.image] = find_slide_input_ref(root, item.image, kinds)
    missing = sorted(image for image, ref in found.items() if ref is None)
    kept = [item for item in items if found[item.image] is not None]
    resolved = ResolvedInputs(kept, {k: v for k, v in found.items() if v is not None}, missing,
                              len(items) - len(kept))
    if missing and not skip_missing:
        examples = ", ".join(str(slide_input_candidates(root, image, tuple(kinds))[0]) for image in missing[:3])
        raise TrainingError(f"{len(missing)} slide(s) ({resolved.n_items_missing} item(s)) have no slide inputs "
                            f"under {root} (e.g. {examples}). Extract them (`wsi-llava features`), fix "
                            "the features root, or skip those items with --skip-missing-features.")
    return resolved


@dataclass(frozen=True)
class ReportPair:
    slide_id: str
    image: str
    text: str


def report_pairs_from_items(items: Iterable[BenchItem]) -> list[ReportPair]:
    """One report per slide from report-generation items (the first answer per slide is kept)."""
    pairs: dict[str, ReportPair] = {}
    for item in items:
        if item.task == "report_generation" and item.slide_id not in pairs:
            pairs[item.slide_id] = ReportPair(item.slide_id, item.image, item.answer)
    return list(pairs.values())


def read_reports_file(path: str | Path) -> list[ReportPair]:
    """Reports from JSONL (`slide_id`, `text`, optional `image`) or CSV with the same columns."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"reports file {path} does not exist.")
    if path.suffix == ".jsonl":
        rows = []
        for line in iter_jsonl(path):
            if line.error:
                raise TrainingError(f"{path}: line {line.number} is {line.error}.")
            rows.append(line.value)
    elif path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    else:
        raise TrainingError(f"reports file {path}: expected .jsonl or .csv with columns slide_id,text.")
    pairs = []
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not row.get("slide_id") or not str(row.get("text") or "").strip():
            raise TrainingError(f"{path}: row {number} needs non-empty 'slide_id' and 'text'.")
        image = row.get("image") or f"{row['slide_id']}.pt"
        pairs.append(ReportPair(row["slide_id"], image, str(row["text"]).strip()))
    return pairs


def unit_hash(key: str, seed: int) -> float:
    """A seeded hash of `key` in [0, 1): deterministic across runs and machines."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def split_by_patient(slide_ids: Iterable[str], val_fraction: float, seed: int = 0
                     ) -> tuple[set[str], set[str]]:
    """(train slide ids, validation slide ids): each TCGA patient lands wholly on one side.

    Deterministic: a patient goes to validation when a seeded hash of its id falls below
    `val_fraction`, so adding slides never moves existing patients.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise TrainingError(f"val_fraction must be in [0, 1), got {val_fraction}.")
    train, val = set(), set()
    for slide_id in slide_ids:
        (val if unit_hash(patient_id_from_slide(slide_id), seed) < val_fraction else train).add(slide_id)
    return train, val


def cross_task_leakage(named_item_sets: dict[str, Sequence[BenchItem]]) -> dict:
    """Slides and patients shared between the given sets (e.g. {"train": ..., "test": ...} or per file).

    WSI-Bench's splits are slide-disjoint within a task but not across tasks; this says how much.
    """
    slides = {name: {item.slide_id for item in items} for name, items in named_item_sets.items()}
    patients = {name: {patient_id_from_slide(s) for s in ids} for name, ids in slides.items()}
    names = list(named_item_sets)
    pairs = []
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            shared_slides = slides[first] & slides[second]
            shared_patients = patients[first] & patients[second]
            pairs.append({"a": first, "b": second, "shared_slides": len(shared_slides),
                          "shared_patients": len(shared_patients),
                          "examples": sorted(shared_patients)[:5]})
    return {"sets": {name: {"slides": len(slides[name]), "patients": len(patients[name])} for name in names},
            "pairs": pairs, "leak_free": all(p["shared_patients"] == 0 for p in pairs)}


def task_counts(items: Iterable[BenchItem]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item.task] = counts.get(item.task, 0) + 1
    return dict(sorted(counts.items()))
