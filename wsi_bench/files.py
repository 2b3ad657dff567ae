"""Read and write WSI-Bench in both released formats, from a file, a folder or a Hub dataset id.

Formats (see ../shared/notes/wsi-llava.md):
- LLaVA conversation JSON, one file per task: `[{"id", "image", "conversations": [{"from": "human",
  "value": "<image>\\n..."}, {"from": "gpt", "value": "..."}]}]`; the task comes from the file stem.
- The official JSONL: `{"question_id", "image", "question", "T-answer", "metadata"}` per line; the task
  comes from `metadata`.

Every item becomes a `BenchItem` with its task and capability resolved through the one task table
(`wsi_bench.tasks`; both releases of the per-task file names, a file stem winning over a colliding metadata
value). A malformed record, or one whose `metadata` names no task, raises `BenchFormatError` naming the file,
the record and the field, or, given a `problems` list, is listed there and skipped (the rest of the file
reads). Usage:

    items = read_benchmark("../shared/wsi-bench-sample")            # every *.json / *.jsonl in a folder
    items = read_benchmark("Lucas-yuc/WSI-Bench", split="test")      # a Hub dataset (needs network)
    dataset = items_to_dataset(items)                                # a `datasets.Dataset`
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from common.atomic import atomic_write_text
from common.hub import hub_errors, hub_snapshot, looks_like_hub_id
from common.jsonl import JsonLine, iter_jsonl
from common.text_files import read_json
from wsi_bench.errors import BenchFormatError, UnknownTaskError
from wsi_bench.tasks import (
    METADATA_TO_TASK,
    TaskSpec,
    resolve_file_task,
    resolve_selected_task,
    resolve_task,
    task_name_from_path,
    turn_numbered_task,
)

IMAGE_PLACEHOLDER = "<image>"


@dataclass
class BenchItem:
    question_id: str
    image: str                  # as released: "TCGA-BRCA/<slide id>.pt" (relative to a features root)
    question: str               # the first human turn without the <image> placeholder
    answer: str                 # the reference answer (first gpt turn)
    task: str                   # canonical task id (wsi_bench.tasks)
    capability: str
    answer_format: str          # "open" | "choice" | "yes_no"
    source_task_name: str       # the file stem or metadata value it was read with
    source: str                 # the file it came from
    conversations: list[dict] = field(default_factory=list)  # all turns, LLaVA style

    @property
    def slide_id(self) -> str:
        return slide_id_from_image(self.image)

    @property
    def patient_id(self) -> str:
        return patient_id_from_slide(self.slide_id)

    def to_dict(self) -> dict:
        return asdict(self)


def slide_id_from_image(image: str) -> str:
    """`TCGA-BRCA/TCGA-XX-1234-01Z-00-DX1.<uuid>.pt` -> `TCGA-XX-1234-01Z-00-DX1.<uuid>`."""
    name = Path(image).name
    for suffix in (".pt", ".h5", ".svs", ".tif", ".tiff", ".ndpi"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def patient_id_from_slide(slide_id: str) -> str:
    """TCGA patient (case) barcode: the first 12 characters, e.g. `TCGA-BH-A18U`."""
    return slide_id[:12]


def _strip_placeholder(text: str) -> str:
    text = text.replace(IMAGE_PLACEHOLDER, "", 1)
    return text.lstrip("\n").strip()


def _require(record: dict, key: str, where: str, kind: type = str):
    if not isinstance(record, dict):
        raise BenchFormatError(f"{where}: expected a JSON object, got {type(record).__name__}.")
    if key not in record:
        raise BenchFormatError(f"{where}: missing field {key!r} (fields present: {sorted(record)}).")
    value = record[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        names = " or ".join(k.__name__ for k in _kinds(kind))
        raise BenchFormatError(f"{where}: field {key!r} must be {names}, got {type(value).__name__}.")
    return value


def _kinds(kind) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


def _item(spec: TaskSpec, *, question_id, image, question, answer, source_task_name, source,
          conversations) -> BenchItem:
    return BenchItem(
        question_id=question_id, image=image, question=question, answer=answer, task=spec.task,
        capability=spec.capability.value, answer_format=spec.answer_format.value,
        source_task_name=source_task_name, source=source, conversations=conversations,
    )


def parse_llava_records(records: list, source: str, task_name: str | None = None,
                        problems: list[str] | None = None) -> list[BenchItem]:
    """LLaVA conversation records -> items.

    The task comes from a record's own `metadata` field when it has one (the combined release file
    `WSI-Bench-train.json` mixes every task), else from the record id's turn number in a turn-numbered file
    (`Conversation_test.json`), else from `task_name`, else from the file stem of `source` (stems of both
    releases; a stem wins over a colliding metadata value). A malformed record, or one whose `metadata`
    names no task, raises `BenchFormatError`; when a `problems` list is given instead, its message (file,
    record index, id, value) is appended there and the record is skipped (the caller reports the count:
    nothing is lost silently, and the rest of the file reads).
    """
    if not isinstance(records, list):
        raise BenchFormatError(f"{source}: a LLaVA conversation file must hold a JSON list of records.")
    task_name = task_name or task_name_from_path(source)
    file_spec: list = []        # [TaskSpec] or [UnknownTaskError], resolved once on first need
    items = []
    for index, record in enumerate(records):
        try:
            name, spec = _record_task(record, index, task_name, source, file_spec)
            items.append(_parse_llava_record(record, index, spec, source, name))
        except BenchFormatError as exc:
            if problems is None:
                raise
            problems.append(str(exc))
    return items


def _record_task(record, index: int, task_name: str, source: str, file_spec: list) -> tuple[str, TaskSpec]:
    """(source task name, spec) of one LLaVA record: its `metadata`, its turn number, or the file's task."""
    if isinstance(record, dict) and record.get("metadata") is not None and not isinstance(record["metadata"], str):
        raise BenchFormatError(f"{source}: record {index}: field 'metadata' must be str (a task name), got "
                               f"{type(record['metadata']).__name__}.")
    if isinstance(record, dict) and isinstance(record.get("metadata"), str):
        return record["metadata"], _metadata_task(record["metadata"], f"{source}: record {index}"
                                                  + (f" (id {record['id']})" if "id" in record else ""))
    if isinstance(record, dict) and isinstance(record.get("id"), (str, int)):
        try:
            spec = turn_numbered_task(task_name, str(record["id"]))
        except UnknownTaskError as exc:
            raise BenchFormatError(f"{source}: record {index}: {exc}") from exc
        if spec is not None:
            return task_name, spec
    if not file_spec:
        try:
            file_spec.append(resolve_file_task(task_name))
        except UnknownTaskError as exc:
            file_spec.append(exc)
    if isinstance(file_spec[0], UnknownTaskError):
        hint = UNLABELLED_RELEASE_FILES.get(task_name) or str(file_spec[0])
        raise BenchFormatError(f"{source}: record {index}: the record carries no `metadata` field and the file "
                               f"name does not name a WSI-Bench task ({hint}). Rename the file to its task (e.g. "
                               "Grading_test.json) or add `metadata` to each record.") from file_spec[0]
    return task_name, file_spec[0]


def _metadata_task(value: str, where: str) -> TaskSpec:
    try:
        return resolve_task(value)
    except UnknownTaskError as exc:
        known = ", ".join(sorted(METADATA_TO_TASK))
        raise BenchFormatError(f"{where}: field 'metadata' is {value!r}, which names no WSI-Bench task (the "
                               f"official values: {known}; file stems and task ids are accepted too); fix the "
                               "value or drop the record.") from exc


# Released files whose records carry no task and whose name names none.
UNLABELLED_RELEASE_FILES = {
    "WSI-Bench": "the March 2025 release (XinhengLyu/WSI-LLaVA commit f09f6a2) concatenates the 13 early-2025 "
                 "test files (commit 1603d85) with no task field; read those per-task files instead",
}


def _parse_llava_record(record, index: int, spec: TaskSpec, source: str, task_name: str) -> BenchItem:
    where = f"{source}: record {index}"
    qid = str(_require(record, "id", where, (str, int)))
    where = f"{source}: record {index} (id {qid})"
    image = _require(record, "image", where)
    turns = _require(record, "conversations", where, list)
    if len(turns) < 2:
        raise BenchFormatError(f"{where}: 'conversations' needs a human turn and a gpt turn, got {len(turns)}.")
    normalized = []
    for t, turn in enumerate(turns):
        role = _require(turn, "from", f"{where} turn {t}")
        value = _require(turn, "value", f"{where} turn {t}")
        expected = "human" if t % 2 == 0 else "gpt"
        if role != expected:
            raise BenchFormatError(f"{where} turn {t}: 'from' is {role!r}, expected {expected!r} "
                                   "(turns alternate human, gpt).")
        normalized.append({"from": role, "value": value})
    return _item(spec, question_id=qid, image=image, question=_strip_placeholder(normalized[0]["value"]),
                 answer=normalized[1]["value"].strip(), source_task_name=task_name, source=source,
                 conversations=normalized)


def parse_official_rows(rows: Iterable[dict], source: str, problems: list[str] | None = None,
                        line_numbers: Sequence[int] | None = None) -> list[BenchItem]:
    """Official JSONL rows {question_id, image, question, T-answer, metadata} -> items.

    Malformed rows, and rows whose `metadata` names no task, raise, or with a `problems` list are recorded
    there (file, row index and, given `line_numbers` (each row's line in the file), its line, value) and skipped.
    """
    items = []
    for index, row in enumerate(rows):
        try:
            items.append(_parse_official_row(row, index, source))
        except BenchFormatError as exc:
            if line_numbers is not None:                 # rows count the kept lines; people look for the line
                exc = BenchFormatError(f"{exc} (Line {line_numbers[index]} of the file.)")
            if problems is None:
                raise exc from None
            problems.append(str(exc))
    return items


def _parse_official_row(row, index: int, source: str) -> BenchItem:
    where = f"{source}: row {index}"
    qid = str(_require(row, "question_id", where, (str, int)))
    where = f"{where} (question_id {qid})"
    metadata = _require(row, "metadata", where)
    spec = _metadata_task(metadata, where)
    question = _strip_placeholder(_require(row, "question", where))
    answer = _require(row, "T-answer", where).strip()
    return _item(spec, question_id=qid, image=_require(row, "image", where), question=question,
                 answer=answer, source_task_name=metadata, source=source,
                 conversations=[{"from": "human", "value": f"{IMAGE_PLACEHOLDER}\n{question}"},
                                {"from": "gpt", "value": answer}])


def read_jsonl(path: str | Path, problems: list[str] | None = None) -> list[JsonLine]:
    """The non-blank lines that parse (value and line number); a line that does not parse raises, or is
    listed in `problems`."""
    lines = []
    for line in iter_jsonl(path):
        if line.error:
            message = f"{path}: line {line.number} is {line.error}."
            if problems is None:
                raise BenchFormatError(message)
            problems.append(message + " Line skipped.")
            continue
        lines.append(line)
    return lines


def read_bench_file(path: str | Path, task_name: str | None = None,
                    problems: list[str] | None = None) -> list[BenchItem]:
    """One WSI-Bench file in either format (chosen by extension: .json LLaVA, .jsonl official).

    See `parse_llava_records` for `problems` (collect-and-skip instead of raising on bad records).
    """
    path = Path(path)
    if not path.is_file():
        raise BenchFormatError(f"{path}: no such WSI-Bench file.")
    if path.suffix == ".jsonl":
        lines = read_jsonl(path, problems)
        return parse_official_rows([line.value for line in lines], str(path), problems,
                                   [line.number for line in lines])
    if path.suffix != ".json":
        raise BenchFormatError(f"{path}: expected a .json (LLaVA conversations) or .jsonl (official) file.")
    records = read_json(path, error=BenchFormatError)      # not UTF-8 / not JSON / nested too deeply
    return parse_llava_records(records, str(path), task_name, problems)


# Released files whose names do not end in their split (the Hub dataset Lucas-yuc/WSI-Bench and the
# WSI-LLaVA repository); every other file is `<task>_<split>.json[l]`.
RELEASED_FILE_SPLITS = {
    "WSI-Bench-train.json": "train",
    "WSI-Bench-test.jsonl": "test",
    "WSI-Bench-open-question.jsonl": "test",
    "WSI-Bench-Report-only.jsonl": "test",
}


def file_split(name: str) -> str | None:
    """The split a WSI-Bench file belongs to, from the release table or its `_<split>` suffix."""
    base = Path(name).name
    if base in RELEASED_FILE_SPLITS:
        return RELEASED_FILE_SPLITS[base]
    match = re.search(r"[_-]([A-Za-z]+)$", base.split(".")[0])
    return match.group(1).lower() if match else None


def _split_matches(path: Path | str, split: str | None) -> bool:
    return split is None or file_split(str(path)) == split.lower()


def bench_files(folder: str | Path, split: str | None = None) -> list[Path]:
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix in {".json", ".jsonl"} and p.is_file())
    return [p for p in files if _split_matches(p, split)]


def read_benchmark(source: str | Path, split: str | None = None, tasks: Sequence[str] | None = None,
                   revision: str | None = None, problems: list[str] | None = None) -> list[BenchItem]:
    """Items from a file, a folder of WSI-Bench files, or a Hub dataset id ("owner/name").

    `split` keeps only that split's files (folders and Hub datasets; see `file_split`); `tasks` keeps only
    items whose task resolves to one of the given names (file stems, metadata values or task ids). With a
    `problems` list, malformed records are recorded there and skipped instead of raising.
    """
    path = Path(source)
    if path.is_file():
        items = read_bench_file(path, problems=problems)
    elif path.is_dir():
        files = bench_files(path, split)
        if not files:
            raise BenchFormatError(f"{path}: no WSI-Bench .json/.jsonl files"
                                   + (f" for split {split!r}" if split else "") + " in this folder.")
        items = [item for f in files for item in read_bench_file(f, problems=problems)]
    elif looks_like_hub_id(source):
        items = read_benchmark(_download_hub_dataset(str(source), revision, split), split=split, problems=problems)
    else:
        raise BenchFormatError(f"{source}: neither an existing file/folder nor a Hub dataset id (owner/name).")
    if tasks:
        wanted = {resolve_selected_task(name).task for name in tasks}
        items = [item for item in items if item.task in wanted]
    return items


def _download_hub_dataset(repo_id: str, revision: str | None, split: str | None) -> str:
    """Download only the dataset's WSI-Bench files of `split` (all of them without one)."""
    from huggingface_hub import HfApi

    hint = "or pass a local folder of WSI-Bench files instead"
    with hub_errors(f"Hub dataset {repo_id}", error=BenchFormatError, repo_id=repo_id, repo_type="dataset",
                    revision=revision, hint=hint):
        names = HfApi().list_repo_files(repo_id, repo_type="dataset", revision=revision)
    wanted = [n for n in names if n.endswith((".json", ".jsonl")) and _split_matches(n, split)]
    if not wanted:
        raise BenchFormatError(f"Hub dataset {repo_id!r} has no WSI-Bench .json/.jsonl files"
                               + (f" for split {split!r}" if split else "") + f"; its files: {sorted(names)}.")
    return str(hub_snapshot(repo_id, repo_type="dataset", revision=revision, allow_patterns=wanted,
                            error=BenchFormatError, hint=hint))


def items_to_dataset(items: Sequence[BenchItem]):
    """A `datasets.Dataset` with one row per item (conversations kept as a list of dicts)."""
    from datasets import Dataset

    return Dataset.from_list([item.to_dict() for item in items])


def write_llava_json(items: Sequence[BenchItem], path: str | Path) -> None:
    """Items -> one LLaVA conversation JSON file (written to a temp name, then renamed)."""
    records = [{"id": item.question_id, "image": item.image,
                "conversations": item.conversations or [
                    {"from": "human", "value": f"{IMAGE_PLACEHOLDER}\n{item.question}"},
                    {"from": "gpt", "value": item.answer}]} for item in items]
    atomic_write_text(Path(path), json.dumps(records, ensure_ascii=False, indent=1))


def write_official_jsonl(items: Sequence[BenchItem], path: str | Path) -> None:
    """Items -> the official JSONL layout; `metadata` is the task's official metadata value (the item's own
    when it was read with one that means its task: the early file stem `Morphology` is regional structure,
    the metadata value `Morphology` specific feature, so such an item is written as `tissue`)."""
    first_metadata = {}
    for meta, task in METADATA_TO_TASK.items():
        first_metadata.setdefault(task, meta)
    lines = []
    for item in items:
        metadata = item.source_task_name if METADATA_TO_TASK.get(item.source_task_name) == item.task else (
            first_metadata.get(item.task, item.source_task_name))
        lines.append(json.dumps({"question_id": item.question_id, "image": item.image,
                                 "question": item.question, "T-answer": item.answer,
                                 "metadata": metadata}, ensure_ascii=False))
    atomic_write_text(Path(path), "\n".join(lines) + ("\n" if lines else ""))
