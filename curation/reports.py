"""Read pathology reports: JSONL or CSV rows with a slide id and the text, or a folder of `<slide id>.txt`.

Accepted column names (first match wins): slide id `slide_id`, `slide`, `image`, `patient_filename`,
`filename`, `id`; text `text`, `report`, `report_text`; optional `project` (e.g. `TCGA-BRCA`, used for the
WSI-Bench image path `TCGA-BRCA/<slide>.pt`) and `patient_id` (default: the TCGA barcode's first 12
characters). In a folder, `.txt` files in a sub-folder take the sub-folder's name as their project.

A row without a slide id or text raises `ReportFormatError` naming the file and line, or, with a
`problems` list, is recorded there and skipped (the caller reports every problem). Files are UTF-8
(`common.text_files`): a JSONL line or a CSV file that is not, JSON nested too deeply, or a CSV field
longer than `MAX_CSV_FIELD_CHARS` raises `ReportFormatError` naming the file, the line (and the byte
offset) and the fix; a `.txt` report that is not UTF-8 is such a problem of that report. Usage:

    problems = []
    reports = read_reports(["reports.jsonl", "more/"], problems)
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from curation.errors import CurationError
from common.jsonl import iter_jsonl
from common.text_files import read_text
from wsi_bench.files import patient_id_from_slide, slide_id_from_image

SLIDE_COLUMNS = ("slide_id", "slide", "image", "patient_filename", "filename", "id")
TEXT_COLUMNS = ("text", "report", "report_text")
MAX_CSV_FIELD_CHARS = 1 << 26     # 64 Mi characters per CSV cell (Python's csv default is 128 Ki)


class ReportFormatError(CurationError):
    """A report file or row that cannot be read; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class Report:
    slide_id: str
    text: str
    source: str          # "file:line" (or the .txt path) it was read from
    project: str = ""
    patient_id: str = ""

    def __post_init__(self) -> None:
        if not self.slide_id.strip():
            raise ReportFormatError(f"{self.source}: the slide id is empty.")
        if not self.text.strip():
            raise ReportFormatError(f"{self.source}: the report text for slide {self.slide_id!r} is empty.")
        if not self.patient_id:
            object.__setattr__(self, "patient_id", patient_id_from_slide(self.slide_id))

    @property
    def sha256(self) -> str:
        return report_sha256(self.text)

    @property
    def image(self) -> str:
        """The WSI-Bench `image` field: `<project>/<slide>.pt`, or `<slide>.pt` without a project."""
        return f"{self.project}/{self.slide_id}.pt" if self.project else f"{self.slide_id}.pt"


def report_sha256(text: str) -> str:
    """The source report hash stored with every pair (newlines normalised, otherwise the exact text)."""
    return hashlib.sha256(text.replace("\r\n", "\n").encode("utf-8")).hexdigest()


def _first(row: dict, names: Sequence[str]) -> str:
    for name in names:
        value = row.get(name)
        if value is not None and str(value).strip():
            return str(value)
    return ""


def report_from_row(row: dict, where: str) -> Report:
    if not isinstance(row, dict):
        raise ReportFormatError(f"{where}: expected an object with a slide id and a text, got "
                                f"{type(row).__name__}.")
    slide = _first(row, SLIDE_COLUMNS)
    text = _first(row, TEXT_COLUMNS)
    if not slide:
        raise ReportFormatError(f"{where}: no slide id; name the column one of {', '.join(SLIDE_COLUMNS)} "
                                f"(columns present: {sorted(row)}).")
    if not text:
        raise ReportFormatError(f"{where}: no report text; name the column one of {', '.join(TEXT_COLUMNS)} "
                                f"(columns present: {sorted(row)}), or drop the empty row.")
    slide_id = slide_id_from_image(slide.strip())
    return Report(slide_id=slide_id, text=text.replace("\r\n", "\n"), source=where,
                  project=str(row.get("project") or "").strip(), patient_id=str(row.get("patient_id") or "").strip())


def _rows_jsonl(path: Path) -> Iterable[tuple[str, object]]:
    for line in iter_jsonl(path):
        if line.error:
            raise ReportFormatError(f"{path}:{line.number}: {line.error}.")
        yield f"{path}:{line.number}", line.value


def _rows_csv(path: Path) -> Iterable[tuple[str, object]]:
    text = read_text(path, error=ReportFormatError)           # UTF-8 (a BOM from Excel dropped)
    csv.field_size_limit(MAX_CSV_FIELD_CHARS)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    number = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ReportFormatError(f"{path}:{reader.line_num + 1}: not readable as CSV ({exc}); a cell may hold at "
                                    f"most {MAX_CSV_FIELD_CHARS} characters (curation.reports.MAX_CSV_FIELD_CHARS)"
                                    ".") from exc
        number += 1
        yield f"{path}:{number}", {k.strip().lower(): v for k, v in row.items() if k}


def _read_file(path: Path, problems: list[str] | None) -> list[Report]:
    readers = {".jsonl": _rows_jsonl, ".csv": _rows_csv}
    if path.suffix not in readers:
        raise ReportFormatError(f"{path}: reports come as .jsonl, .csv, or a folder of .txt files.")
    reports = []
    for where, row in readers[path.suffix](path):
        try:
            reports.append(report_from_row(row, where))
        except ReportFormatError as exc:
            if problems is None:
                raise
            problems.append(str(exc))
    return reports


def _read_folder(folder: Path, problems: list[str] | None) -> list[Report]:
    files = sorted(p for p in folder.rglob("*.txt") if p.is_file())
    if not files:
        raise ReportFormatError(f"{folder}: no .txt reports in this folder (name each <slide id>.txt).")
    reports = []
    for path in files:
        project = path.parent.name if path.parent != folder else ""
        try:
            text = read_text(path, error=ReportFormatError).replace("\r\n", "\n").replace("\r", "\n")
            reports.append(Report(slide_id=path.stem, text=text, source=str(path),
                                  project=project))
        except ReportFormatError as exc:
            if problems is None:
                raise
            problems.append(str(exc))
    return reports


def read_reports(sources: Sequence[str | Path], problems: list[str] | None = None) -> list[Report]:
    """Reports from JSONL/CSV files and folders of .txt files, in input order."""
    reports: list[Report] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            reports += _read_folder(path, problems)
        elif path.is_file():
            reports += _read_file(path, problems)
        else:
            raise ReportFormatError(f"{path}: no such report file or folder.")
    return reports
