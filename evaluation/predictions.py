"""Prediction files in, `ScoringItem`s out: every row matched to its reference, every unmatched row reported.

Accepted prediction files (.jsonl one object per line, or .json):
- this project's rows (`wsi-llava evaluate predict`): {question_id, image, task, capability, question,
  reference, prediction, model, settings}. Self-contained.
- the official open-ended JSONL with the model's answer added: {question_id, image, question, T-answer,
  metadata, answer}. Self-contained.
- predictions keyed by id, with the references given separately (`--references`, any WSI-Bench file,
  folder or Hub id in either released format, e.g. the LLaVA conversation JSON files): rows
  {question_id | id, prediction | answer | text | Output [, task | metadata]} (LLaVA's model_vqa output
  has `text`), or one JSON object {id: prediction}.
With `--references`, the references define the item set (reference text, question and image come from
the benchmark) and references without a prediction are reported as missing.

Task and capability come ONLY from the task table (`wsi_bench.tasks.resolve_task`) applied to
the row's `task` (a file stem such as `Staging_choice`, a metadata value such as `Stage`, or a task id)
or `metadata`; a stored `capability` is ignored. Items are keyed by (task, question_id): WSI-Bench ids
repeat across task files. A row whose task is unknown, whose id matches no reference or several
(ambiguous without a task), or that lacks a field is reported in `LoadReport.unmatched`, never dropped
silently; a second row for the same key is reported in `duplicates` (the first is kept).

A line that cannot be used is skipped and listed in `LoadReport.problems` with its file and line (its
position in `skipped_lines`): not UTF-8, not JSON, nested too deeply (`common.text_files`), not an object,
or a field of the wrong type (`FIELD_TYPES`: ids are strings or integers, texts are strings; nothing is
`str()`-ed). A whole .json file that cannot be decoded raises `PredictionFormatError` naming the line and
byte offset.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from wsi_bench.errors import BenchError
from common.jsonl import iter_jsonl
from common.text_files import read_json
from wsi_bench.tasks import TaskSpec, resolve_selected_task, resolve_task
from evaluation.errors import PredictionFormatError

PREDICTION_KEYS = ("prediction", "answer", "text", "Output")
REFERENCE_KEYS = ("reference", "T-answer")
ID_KEYS = ("question_id", "id")
TASK_KEYS = ("task", "metadata")

# The type of every field that is read (None counts as absent): (accepted types, in words). Of the
# alternative names of one field (ID_KEYS, ...) only the one read is checked: the first that is not null.
_ID_TYPE, _TEXT_TYPE = ((str, int), "a string or an integer"), ((str,), "a string")
FIELD_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "id": _ID_TYPE, "prediction": _TEXT_TYPE, "reference": _TEXT_TYPE, "question": _TEXT_TYPE,
    "image": _TEXT_TYPE, "task": _TEXT_TYPE,
    "metadata": ((str, dict), "a string (or an object, as LLaVA's model_vqa writes: read as no task)"),
}
_FIELD_KEYS = {"id": ID_KEYS, "prediction": PREDICTION_KEYS, "reference": REFERENCE_KEYS}
_READ_WITHOUT_REFERENCES = ("reference", "question", "image")   # with --references they come from there

@dataclass
class ScoringItem:
    question_id: str
    task: str                 # canonical task id from the task table
    task_title: str
    capability: str
    answer_format: str        # "open" | "choice" | "yes_no"
    source_task_name: str     # the name the row or reference file gave (stem / metadata value / id)
    image: str
    question: str
    reference: str
    prediction: str
    model: str | None = None
    settings: dict | None = None
    source: str = ""          # "file:line" of the prediction row

    @property
    def key(self) -> tuple[str, str]:
        return (self.task, self.question_id)


MAX_LINES_NAMED = 5          # skipped lines named in the message of a file that gave no item


@dataclass
class LoadReport:
    path: str
    references: str | None
    formats: list[str] = field(default_factory=list)
    n_rows: int = 0
    n_items: int = 0
    n_filtered_out: int = 0                               # rows of tasks not asked for (--tasks)
    unmatched: list[dict] = field(default_factory=list)   # {source, question_id, task, reason}
    missing: list[dict] = field(default_factory=list)     # references with no prediction
    duplicates: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)     # skipped lines (predictions) / records (references)
    skipped_lines: list[int] = field(default_factory=list)   # predictions lines (.json: entries, 1-based) skipped
    first_skipped: str | None = None                      # the problem of the first of them (not in to_dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("first_skipped")
        data.update(n_unmatched=len(self.unmatched), n_missing=len(self.missing),
                    n_duplicates=len(self.duplicates), n_problems=len(self.problems))
        return data

    def why_nothing(self) -> str:
        """Why the file gave no item: every line skipped (which ones, the first reason), rows unmatched or of
        other tasks, or no rows at all."""
        skipped = self.skipped_lines
        one, many = ("entry", "entries") if self.path.endswith(".json") else ("line", "lines")
        unit = many if len(skipped) != 1 else one
        named = ", ".join(map(str, skipped[:MAX_LINES_NAMED])) + (
            f" and {len(skipped) - MAX_LINES_NAMED} more" if len(skipped) > MAX_LINES_NAMED else "")
        what = f"{len(skipped)} {unit} ({unit} {named})"
        if skipped and not self.unmatched and not self.n_filtered_out:
            return f"every {one} of it was skipped, {what}; the first: {self.first_skipped}"
        parts = [f"{self.n_rows} rows"] + ([f"{what} skipped"] if skipped else [])
        if self.unmatched:
            parts.append(f"{len(self.unmatched)} unmatched: "
                         + "; ".join(sorted({u["reason"] for u in self.unmatched})[:5]))
        if self.n_filtered_out:
            parts.append(f"{self.n_filtered_out} of other tasks than --tasks")
        if self.n_rows == 0 and not skipped:
            parts.append("the file has no rows")
        return ", ".join(parts) + (f"; the first skipped: {self.first_skipped}" if skipped else "")


def _first(row: dict, keys: Sequence[str]):
    for key in keys:
        if key in row and row[key] is not None:
            return key, row[key]
    return None, None


def read_prediction_rows(path: Path, problems: list[str],
                         skipped: dict[int, str] | None = None) -> list[tuple[str, int, dict]]:
    """(source, position, row) of every row object in a .jsonl or .json predictions file, where position is
    the line (.jsonl) or the 1-based entry (.json); unreadable lines go to `problems` (and `skipped`: position
    -> problem)."""
    skipped = skipped if skipped is not None else {}
    if not path.is_file():
        raise PredictionFormatError(f"{path}: no such predictions file.")
    if path.suffix == ".jsonl":
        rows = []
        for line in iter_jsonl(path):
            if line.error or not isinstance(line.value, dict):
                reason = line.error or f"expected a JSON object, got {type(line.value).__name__}"
                problems.append(skipped.setdefault(line.number, f"{path}:{line.number}: {reason}; line skipped"))
            else:
                rows.append((f"{path}:{line.number}", line.number, line.value))
        return rows
    if path.suffix != ".json":
        raise PredictionFormatError(f"{path}: expected a .jsonl or .json predictions file.")
    data = read_json(path, error=PredictionFormatError)       # not UTF-8 / not JSON / nested too deeply
    if isinstance(data, dict):   # {id: prediction} or {id: {...}}
        return [(f"{path}:{qid}", position, value if isinstance(value, dict) and "question_id" in value else
                 {"question_id": qid, **(value if isinstance(value, dict) else {"prediction": value})})
                for position, (qid, value) in enumerate(data.items(), start=1)]
    if isinstance(data, list) and all(isinstance(row, dict) for row in data):
        return [(f"{path}:[{i}]", i + 1, row) for i, row in enumerate(data)]
    raise PredictionFormatError(f"{path}: a .json predictions file must hold an object {{id: prediction}} "
                                "or a list of row objects.")


def field_type_problem(row: dict, with_references: bool = False) -> str | None:
    """"field 'reference' must be a string, got dict" for the first field read from `row` with the wrong
    type (bools are not integers), else None."""
    for name, (types, words) in FIELD_TYPES.items():
        if with_references and name in _READ_WITHOUT_REFERENCES:
            continue
        key, value = _first(row, _FIELD_KEYS.get(name, (name,)))
        if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
            return f"field {key!r} must be {words}, got {type(value).__name__}"
    return None


def _row_format(row: dict) -> str:
    if "prediction" in row and "reference" in row:
        return "wsi-llava rows"
    if "T-answer" in row and "answer" in row:
        return "official jsonl + answer"
    return "predictions keyed by id"


def _spec_of(row: dict) -> tuple[TaskSpec | None, str | None, str | None]:
    """(spec, name, error) for the row's task field; (None, None, None) when it has none."""
    names = [row[key] for key in TASK_KEYS if isinstance(row.get(key), str) and row[key].strip()]
    if not names:       # LLaVA's model_vqa output carries `metadata: {}`: no task
        return None, None, None
    name = names[0]
    try:
        return resolve_task(str(name)), str(name), None
    except BenchError:
        return None, str(name), f"unknown task {name!r} (use a WSI-Bench file stem, metadata value or task id)"


def _item(spec: TaskSpec, *, question_id, source_task_name, image, question, reference, prediction, row,
          source) -> ScoringItem:
    settings = row.get("settings")
    model = row.get("model") if row.get("model") is not None else row.get("model_id")   # model_id: LLaVA
    return ScoringItem(question_id=question_id, task=spec.task, task_title=spec.title,
                       capability=spec.capability.value, answer_format=spec.answer_format.value,
                       source_task_name=source_task_name, image=str(image or ""), question=str(question or ""),
                       reference=str(reference), prediction=str(prediction),
                       model=str(model) if model is not None else None,
                       settings=settings if isinstance(settings, dict) else None, source=source)


def load_predictions(path: str | Path, references: str | Path | None = None,
                     tasks: Sequence[str] | None = None) -> tuple[list[ScoringItem], LoadReport]:
    """Items to score, in file order, and the report of everything that could not be matched."""
    path = Path(path)
    report = LoadReport(path=str(path), references=str(references) if references else None)
    skips: dict[int, str] = {}                            # position -> its problem
    rows = read_prediction_rows(path, report.problems, skips)
    report.n_rows = len(rows)
    report.formats = sorted({_row_format(row) for _, _, row in rows})
    wanted = _wanted_tasks(tasks)
    refs = _load_references(references, report) if references else None
    items: dict[tuple[str, str], ScoringItem] = {}
    for source, position, row in rows:
        wrong_type = field_type_problem(row, with_references=refs is not None)
        if wrong_type:
            report.problems.append(skips.setdefault(position, f"{source}: {wrong_type}; line skipped"))
            continue
        item = _match_row(source, row, refs, report)
        if item is None:
            continue
        if wanted is not None and item.task not in wanted:
            report.n_filtered_out += 1
        elif item.key in items:
            report.duplicates.append({"source": source, "question_id": item.question_id, "task": item.task,
                                      "kept": items[item.key].source})
        else:
            items[item.key] = item
    if refs is not None:
        report.missing = [{"question_id": ref.question_id, "task": ref.task, "source": ref.source}
                          for key, ref in refs.by_key.items()
                          if key not in items and (wanted is None or ref.task in wanted)]
    report.n_items = len(items)
    report.skipped_lines = sorted(skips)
    report.first_skipped = skips[report.skipped_lines[0]] if skips else None
    return list(items.values()), report


def _wanted_tasks(tasks: Sequence[str] | None) -> set[str] | None:
    if not tasks:
        return None
    try:
        return {resolve_selected_task(name).task for name in tasks}
    except BenchError as exc:
        raise PredictionFormatError(f"--tasks: {exc}") from exc


@dataclass
class _References:
    by_key: dict          # (task, question_id) -> BenchItem
    by_id: dict           # question_id -> [BenchItem, ...]


def _load_references(source, report: LoadReport) -> _References:
    from wsi_bench.files import read_benchmark

    try:
        bench = read_benchmark(source, problems=report.problems)
    except BenchError as exc:
        raise PredictionFormatError(f"--references {source}: {exc}") from exc
    by_key, by_id = {}, {}
    for ref in bench:
        by_key.setdefault((ref.task, ref.question_id), ref)
        by_id.setdefault(ref.question_id, []).append(ref)
    return _References(by_key, by_id)


def _match_row(source: str, row: dict, refs: _References | None, report: LoadReport) -> ScoringItem | None:
    _, qid = _first(row, ID_KEYS)
    _, prediction = _first(row, PREDICTION_KEYS)
    spec, task_name, task_error = _spec_of(row)

    def unmatched(reason: str) -> None:
        report.unmatched.append({"source": source, "question_id": None if qid is None else str(qid),
                                 "task": task_name, "reason": reason})

    if qid is None:
        return unmatched(f"no id field (one of {', '.join(ID_KEYS)})")
    qid = str(qid)
    if prediction is None or not isinstance(prediction, str):
        return unmatched(f"no prediction text (one of {', '.join(PREDICTION_KEYS)}, a string)")
    if task_error:
        return unmatched(task_error)
    if refs is None:
        _, reference = _first(row, REFERENCE_KEYS)
        if reference is None or spec is None:
            return unmatched("no reference or task in the row: pass --references with the WSI-Bench files")
        return _item(spec, question_id=qid, source_task_name=task_name, image=row.get("image"),
                     question=row.get("question"), reference=reference, prediction=prediction, row=row,
                     source=source)
    if spec is not None:
        ref = refs.by_key.get((spec.task, qid))
        if ref is None:
            return unmatched(f"no reference of task {spec.task!r} with this id")
    else:
        candidates = refs.by_id.get(qid, [])
        if len(candidates) != 1:
            return unmatched("no reference with this id" if not candidates else
                             f"the id is ambiguous across tasks {sorted(r.task for r in candidates)}: add a "
                             "task field to the row")
        ref = candidates[0]
    return _item(resolve_task(ref.task), question_id=qid, source_task_name=ref.source_task_name, image=ref.image,
                 question=ref.question, reference=ref.answer, prediction=prediction, row=row, source=source)


def items_by_task(items: Iterable[ScoringItem]) -> dict[str, list[ScoringItem]]:
    grouped: dict[str, list[ScoringItem]] = {}
    for item in items:
        grouped.setdefault(item.task, []).append(item)
    return grouped
