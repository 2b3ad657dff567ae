"""Deterministic cleaning of the common TCGA pathology report layouts: headed sections, kept or removed.

WSI-Bench keeps the microscopic morphology and the diagnosis of a report and removes the gross
description and the immunohistochemistry (IHC) results (../shared/notes/wsi-llava.md). This parser
finds the section headers TCGA reports use (line-start `GROSS DESCRIPTION:`, `Final Diagnosis`, inline
upper-case `... MICROSCOPIC DESCRIPTION: ...`), keeps diagnosis / microscopic / synoptic / staging /
comment / addendum sections, removes gross, IHC, clinical history, specimen, intra-operative and
administrative ones, and removes IHC sentences that sit inside kept sections. Inside a kept section an
IHC or signature field with its content on the same line ("Ancillary Studies: ER positive ...") removes
only that line; inside a removed section a "Note: ..." line stays removed with it. Every kept or removed
piece is a span of the original text, so the cleaned text is made only of the report's own words.

When the layout is not recognised (no header, a long unheaded preamble, diagnostic text before the
first header, or a combined "gross and microscopic" section) the result is marked not `confident` and
`curation.cleaning` sends the report through the LLM pass instead. Usage:

    cleaned = parse_sections(report_text)
    if cleaned.confident:
        print(cleaned.text, [seg.category for seg in cleaned.removed])
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PARSER_VERSION = "sections-2026-11-29.2"

KEEP_CATEGORIES = ("diagnosis", "microscopic", "synoptic", "staging", "comment", "addendum", "kept")
REMOVE_CATEGORIES = ("gross", "ihc", "clinical", "specimen", "intraoperative", "admin", "preamble", "other",
                     "mixed")

# Ordered rules: (header name pattern, category). The first full match wins, so the specific names
# ("post-operative diagnosis") come before the general ones ("diagnosis").
_RULES: tuple[tuple[str, str], ...] = (
    (r"(post|pre)[- ]?op(erative)?\s+diagnos[ie]s|clinical\s+diagnos[ie]s|provisional\s+diagnos[ie]s", "clinical"),
    (r"intra[- ]?operative(\s+(consultation|diagnos[ie]s))?|frozen\s+sections?(\s+diagnos[ie]s)?|touch\s+prep(aration)?",
     "intraoperative"),
    # gross and microscopic findings in one section: removed, and the report goes to the LLM pass
    (r"(gross\s*(and|&|/)\s*micro(scopic)?|micro(scopic)?\s*(and|&|/)\s*gross)(\s+(description|examination|findings))?",
     "mixed"),
    (r"((final|surgical|pathologic(al)?|anatomic|final\s+pathologic(al)?|microscopic)\s+)?diagnos[ie]s(\s+comments?)?"
     r"|interpretation|impression|conclusions?", "diagnosis"),
    (r"micro(scopic)?(\s+(description|examination|exam|findings))?|histolog(y|ic\s+description)|histopathology",
     "microscopic"),
    (r"synoptic(\s+(report|data|summary|checklist|comments?))?(\s*-\s*[a-z][a-z ]*)?|(case\s+)?synopsis"
     r"|cap\s+(cancer\s+)?(protocol|checklist|summary)|(tumou?r|cancer|pathology)\s+summary|summary\s+of\s+findings"
     r"|(cap\s+)?checklist"
     r"|(additional\s+)?pathologic(al)?\s+(findings|features)", "synoptic"),
    (r"(pathologic(al)?\s+)?(tnm\s+)?stag(e|ing)(\s*\(?(ajcc|ptnm)\)?)?|ajcc(\s+stag(e|ing))?|ptnm", "staging"),
    (r"comments?|notes?", "comment"),
    (r"addend(um|a)(\s+(report|diagnosis))?|amendment|amended\s+report", "addendum"),
    (r"gross(\s+(description|examination|exam|findings))?|macroscopic(\s+(description|examination))?"
     r"|(cassette|block|section)s?(\s+(summary|key|code|list|submitted))?|summary\s+of\s+sections", "gross"),
    (r"immuno\w*(\s+(stains?|studies|results|profile|panel|stain\s+results))?|ihc(\s+results)?"
     r"|special\s+(stains?|studies)"
     r"|(hormone|receptor|biomarker|molecular|ancillary|her-?2\S*|fish)\s+(studies|results|testing|status|analysis)"
     r"|biomarkers?", "ihc"),
    (r"clinical(\s+(history|information|data|notes?))?|history|indications?|reason\s+for\s+(request|referral)",
     "clinical"),
    (r"specimens?(\s*\(s\))?(\s+(submitted|received|source|type|description|labeled))?|source(\s+of\s+specimen)?"
     r"|procedures?|operations?(\s+performed)?|tissue\s+submitted", "specimen"),
    (r"electronically\s+signed(\s+out)?(\s+by)?|signed(\s+out)?(\s+by)?|pathologists?|attending|resident|physician"
     r"|surgeon|dictated\s+by|verified\s+by|case\s+(number|no)|accession(\s+(number|no))?|mrn|dob|date(\s+of\s+\w+)?"
     r"|patient(\s+name)?|name|age|sex|gender|hospital|client|collected|received|report\s+date", "admin"),
)
_COMPILED = tuple((re.compile(rf"(?:{pattern})", re.IGNORECASE), category) for pattern, category in _RULES)
_STRUCTURE = frozenset({"diagnosis", "microscopic", "synoptic"})
_NAME = r"[A-Za-z][A-Za-z /&()\-]{0,50}?"
_LINE_HEADER = re.compile(rf"^[ \t]*(?:(?:\d{{1,2}}|[A-Z])[.)][ \t]*)?(?P<name>{_NAME})[ \t]*(?::|$)", re.MULTILINE)
_INLINE_HEADER = re.compile(r"(?<![A-Za-z])(?P<name>[A-Z][A-Z /&()\-]{1,50}?)[ \t]*:")

# Words that make text before the first header diagnostic (then the parser is not confident).
_DIAGNOSTIC_WORDS = re.compile(
    r"\b(\w*(carcinoma|sarcoma|lymphoma|melanoma|glioma|blastoma|adenoma|seminoma|thymoma|mesothelioma|cytoma)s?"
    r"|neoplasm\w*|malignan\w*|metasta\w*|dysplasia|in\s+situ|differentiated|grade|lymph\s+nodes?|margins?)\b",
    re.IGNORECASE)

_MARKERS = (r"ER|PR|PgR|HER-?2(?:/neu)?|Ki-?67|MIB-?1|p53|p16|p40|p63|CK\s?\d+(?:/\d+)?|cytokeratins?|CD\s?\d+[a-z]?"
            r"|TTF-?1|S-?100|synaptophysin|chromogranin|GATA-?3|PAX-?8|WT-?1|IDH-?1|ATRX|MLH-?1|MSH-?2|MSH-?6|PMS-?2"
            r"|vimentin|desmin|SOX-?10|HMB-?45|Melan-?A|MART-?1|calretinin|napsin(?:\s*A)?|AE1/AE3|CAM\s?5\.2|EMA|"
            r"estrogen\s+receptors?|progesterone\s+receptors?|androgen\s+receptors?|thyroglobulin|galectin-?3|GFAP"
            r"|olig-?2|inhibin|AFP|PSA|CDX-?2|E-?cadherin|beta-?catenin|bcl-?2|bcl-?6|MGMT|EGFR|ALK|ROS-?1|PD-?L1")
IHC_SENTENCE = re.compile(
    r"\b(immunohisto\w*|immuno-?stain\w*|immunoreactiv\w*|immunoprofile|immunophenotyp\w*|IHC|FISH|"
    r"mismatch\s+repair|(?:special\s+)?stains?\s+(?:for|show\w*|are|is|were|was|demonstrat\w*|reveal\w*))\b"
    rf"|\b(?:{_MARKERS})\b[^.;\n]{{0,80}}?\b(positiv\w*|negativ\w*|\d+\s?%|score|[0-3]\+|intact|loss|lost|retained"
    r"|express\w*|amplif\w*|equivocal|stain\w*)", re.IGNORECASE)


@dataclass(frozen=True)
class Segment:
    """A span of the original report with what it is (a section category or "ihc" inside a section)."""

    start: int
    end: int
    category: str
    header: str = ""

    def to_dict(self, source: str) -> dict:
        return {"start": self.start, "end": self.end, "category": self.category, "header": self.header,
                "text": source[self.start:self.end]}


@dataclass
class CleanedReport:
    """What cleaning produced: kept and removed spans of the source, and the cleaned text built from them."""

    source: str
    kept: list[Segment]
    removed: list[Segment]
    method: str                      # "sections" | "llm"
    confident: bool = True
    reason: str = ""                 # why the section parser was not confident
    unmatched: list[str] = field(default_factory=list)  # LLM excerpts not found verbatim (never used)

    @property
    def text(self) -> str:
        """The kept spans, neighbours separated only by whitespace merged, one run per line."""
        return "\n".join(self.source[a:b].strip() for a, b in self.kept_runs())

    def kept_runs(self) -> list[tuple[int, int]]:
        runs: list[list[int]] = []
        for seg in sorted(self.kept, key=lambda s: s.start):
            if runs and not self.source[runs[-1][1]:seg.start].strip():
                runs[-1][1] = max(runs[-1][1], seg.end)
            elif self.source[seg.start:seg.end].strip():
                runs.append([seg.start, seg.end])
        return [(a, b) for a, b in runs]

    def removed_dicts(self) -> list[dict]:
        return [seg.to_dict(self.source) for seg in sorted(self.removed, key=lambda s: s.start)
                if self.source[seg.start:seg.end].strip()]

    def removed_text(self, category: str) -> str:
        return "\n".join(d["text"].strip() for d in self.removed_dicts() if d["category"] == category)


def classify_header(name: str) -> tuple[str, str] | None:
    """(category, header text) for a known header name, trying word suffixes ("REPORT FINAL DIAGNOSIS")."""
    words = name.strip().split()
    for first in range(len(words)):
        candidate = " ".join(words[first:]).strip(" -/&")
        for pattern, category in _COMPILED:
            if candidate and pattern.fullmatch(candidate):
                return category, candidate
    return None


@dataclass(frozen=True)
class _Header:
    start: int          # where the header text begins
    body_start: int     # where the section's content begins (after the colon)
    category: str
    name: str
    line_only: bool     # the header is alone on its line (no content after it)


def find_headers(text: str) -> list[_Header]:
    found: dict[int, _Header] = {}
    for regex in (_LINE_HEADER, _INLINE_HEADER):
        for match in regex.finditer(text):
            known = classify_header(match.group("name"))
            if known is None:
                continue
            category, name = known
            # a line-start header owns its whole line ("Clinical Diagnosis & History:" is one clinical
            # header); an inline one starts at the known words ("...REPORT FINAL DIAGNOSIS:")
            start = match.start("name") if regex is _LINE_HEADER else (
                match.start("name") + match.group("name").rfind(name.split()[0]))
            rest = text[match.end():text.find("\n", match.end()) if "\n" in text[match.end():] else len(text)]
            found.setdefault(start, _Header(start, match.end(), category, name, not rest.strip()))
    return sorted(found.values(), key=lambda h: h.start)


def _line_end(text: str, position: int) -> int:
    end = text.find("\n", position)
    return len(text) if end < 0 else end


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans = []
    for line in re.finditer(r"[^\n]+", text[start:end]):
        offset = start + line.start()
        pieces = re.split(r"(?<=[.;])\s+(?=[A-Z(])", line.group())
        cursor = 0
        for piece in pieces:
            at = line.group().find(piece, cursor)
            spans.append((offset + at, offset + at + len(piece)))
            cursor = at + len(piece)
    return spans


def _split_ihc(text: str, segment: Segment) -> tuple[list[Segment], list[Segment]]:
    """A kept section -> (kept pieces, removed IHC sentences)."""
    kept, removed = [], []
    for start, end in _sentences(text, segment.start, segment.end):
        target = removed if IHC_SENTENCE.search(text[start:end]) else kept
        target.append(Segment(start, end, "ihc" if target is removed else segment.category, segment.header))
    return kept, removed


def parse_sections(text: str) -> CleanedReport:
    """Split a report into kept and removed spans by its section headers (see the module docstring)."""
    headers = find_headers(text)
    kept: list[Segment] = []
    removed: list[Segment] = []
    cuts: list[Segment] = []
    sections: list[Segment] = []
    current: _Header | None = None
    for index, header in enumerate(headers):
        inside_kept = current is not None and current.category in KEEP_CATEGORIES
        line_end = _line_end(text, header.start)
        if index + 1 < len(headers):
            line_end = min(line_end, headers[index + 1].start)
        if inside_kept and header.category in ("admin", "ihc") and not header.line_only:
            # a signature/date line or an IHC field ("Ancillary Studies: ER positive ...") inside a kept
            # section: drop that line only, the fields after it stay
            cuts.append(Segment(header.start, line_end, header.category, header.name))
            continue
        if inside_kept and header.category == "specimen":
            continue  # "Procedure:" / "Specimen:" fields of a synoptic checklist stay in the section
        if (current is not None and not inside_kept and header.category == "comment" and not header.line_only
                and header.name.lower().startswith("note")):
            continue  # "Note: cold ischemia time ..." inside a gross description stays removed with it
        sections.append(Segment(header.start, len(text), header.category, header.name))
        current = header
    bounded = []
    for index, section in enumerate(sections):
        end = sections[index + 1].start if index + 1 < len(sections) else len(text)
        bounded.append(Segment(section.start, end, section.category, section.header))
    preamble_end = bounded[0].start if bounded else len(text)
    if text[:preamble_end].strip():
        removed.append(Segment(0, preamble_end, "preamble"))
    for section in bounded:
        if section.category in KEEP_CATEGORIES:
            pieces, ihc = _split_ihc(text, section)
            kept += pieces
            removed += ihc
        else:
            removed.append(section)
    kept = _subtract(kept, cuts)
    removed = [r for r in removed if not any(c.start <= r.start and r.end <= c.end for c in cuts)] + cuts
    categories = {s.category for s in bounded}
    preamble_words = len(text[:preamble_end].split())
    reason = ""
    if not bounded:
        reason = "no section header recognised"
    elif not categories & _STRUCTURE:
        reason = "no diagnosis, microscopic or synoptic section found"
    elif preamble_words > 60:
        reason = f"{preamble_words} words before the first recognised header"
    elif _DIAGNOSTIC_WORDS.search(text[:preamble_end]):
        reason = f"diagnostic text before the first recognised header ({preamble_words} words)"
    elif "mixed" in categories:
        reason = "a combined gross and microscopic section (headers cannot separate them)"
    return CleanedReport(source=text, kept=kept, removed=removed, method="sections", confident=not reason,
                         reason=reason)


def _subtract(segments: list[Segment], cuts: list[Segment]) -> list[Segment]:
    """`segments` with the `cuts` spans taken out (an admin line inside a kept section is cut out of it)."""
    out = []
    for seg in segments:
        pieces = [(seg.start, seg.end)]
        for k in cuts:
            next_pieces = []
            for a, b in pieces:
                if k.end <= a or k.start >= b:
                    next_pieces.append((a, b))
                    continue
                if a < k.start:
                    next_pieces.append((a, k.start))
                if k.end < b:
                    next_pieces.append((k.end, b))
            pieces = next_pieces
        out += [Segment(a, b, seg.category, seg.header) for a, b in pieces]
    return out
