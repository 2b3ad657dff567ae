"""Import released WSI-Bench files (LLaVA JSON per task, or the official JSONL) into the review store.

Annotators can then curate the released benchmark like generated pairs. Multiple-choice questions are
split into stem and options; every pair runs the automatic checks that need no report (schema, MCQ,
diagnosis leak in morphology questions, near-duplicates within a slide and task), and the original
record is kept verbatim. Re-importing a file adds nothing twice. Malformed records are listed in the
summary, not skipped silently. Run it with `wsi-llava curate import FILES_OR_DIRS... --store S`, or:

    summary = import_bench(store, ["../shared/wsi-bench-sample"])
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

from curation.pair_checks import (
    CheckSettings,
    CheckSources,
    PairDraft,
    failed_names,
    neighbour_text,
    run_checks,
)
from wsi_bench.records import pair_uid, split_choice_question
from curation.step_runner import StepSummary
from wsi_bench.files import BenchItem, read_benchmark

IMPORT_MODEL = "wsi-bench-release"
# Official metadata values that are aspects of one task (regional structure description): kept per pair so
# the export writes each row back under its own value.
REGIONAL_ASPECTS = ("tissue", "cellular", "infiltration")


def item_to_row(item: BenchItem, neighbours: list[tuple[str, str]], settings: CheckSettings | None = None) -> dict:
    """One released item -> a store row (origin "imported"), with its check results."""
    stem, options = (split_choice_question(item.question) if item.answer_format == "choice"
                     else (item.question, None))
    draft = PairDraft(task=item.task, question=stem, answer=item.answer, options=options)
    uid = pair_uid("wsi-bench", item.task, item.question_id, item.image, item.question, item.answer)
    results = run_checks(draft, CheckSources(), [n for n in neighbours if n[0] != uid], settings)
    aspect = item.source_task_name if item.source_task_name in REGIONAL_ASPECTS else ""
    return dict(uid=uid, origin="imported", slide_id=item.slide_id, patient_id=item.patient_id, image=item.image,
                aspect=aspect,
                task=item.task, capability=item.capability, answer_format=item.answer_format, question=stem,
                options=options, answer=item.answer, record={"id": item.question_id, "image": item.image,
                                                             "conversations": item.conversations},
                generator_model=IMPORT_MODEL, prompt_version=item.source_task_name, source_file=item.source,
                source_question_id=item.question_id, checks=[r.to_dict() for r in results],
                checks_failed=",".join(failed_names(results)))


def import_bench(store, sources: Sequence[str], tasks: Sequence[str] | None = None, split: str | None = None,
                 settings: CheckSettings | None = None, actor: str = "import") -> StepSummary:
    summary = StepSummary("import")
    for source in sources:
        problems: list[str] = []
        items = read_benchmark(source, split=split, tasks=tasks, problems=problems)
        for problem in problems:
            summary.add("failed", source=str(source), error=problem)
        by_file: dict[str, list[BenchItem]] = defaultdict(list)
        for item in items:
            by_file[item.source].append(item)
        for path, file_items in by_file.items():
            neighbours = defaultdict(list, store.neighbours([i.slide_id for i in file_items]))
            rows = []
            for item in file_items:
                row = item_to_row(item, neighbours[(item.slide_id, item.task)], settings)
                neighbours[(item.slide_id, item.task)].append(
                    (row["uid"], neighbour_text(row["question"], row["options"], row["answer"])))
                rows.append(row)
            counts = store.save_imported(rows, path, actor=actor)
            summary.add("ok", source=path, records=len(rows), checks_failed=sum(1 for r in rows if r["checks_failed"]),
                        **counts)
    return summary
