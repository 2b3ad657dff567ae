"""What the review tab draws, as plain values: highlighted report text, the cleaning's removed segments,
the inferred enrichment, headers, queue and progress rows, agreement statistics, MCQ options as text.

No Gradio import: the values are what `gr.HighlightedText` (a list of `(text, label)`), `gr.Markdown`
and `gr.Dataframe` take, so the functions are tested without a server.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from curation.store.status import ReviewInputError
from curation.store.views import AnnotatorProgress, PairView, QueueItem
from wsi_bench.tasks import TASKS_BY_ID

GROUNDING = "grounds the answer"
INFERRED = "inferred (not in the report)"
QUEUE_HEADERS = ["pair", "task", "question", "status", "failed checks", "slide"]     # what to read first, first
PROGRESS_HEADERS = ["annotator", "role", "assigned", "reviewed", "remaining", "accepted", "edited", "rejected",
                    "adjudicated"]
THUMBNAIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
_OPTION_LINE = re.compile(r"^\s*([A-Z])\s*[).:]\s*(.+?)\s*$")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+|!~])")


def md(text: object) -> str:
    """Text from the store shown inside Markdown: special characters escaped, never interpreted."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def highlight(text: str, spans: Sequence[tuple[int, int]], label: str) -> list[tuple[str, str | None]]:
    """`text` cut into plain and `label`led pieces; overlapping or out-of-range spans are merged/clipped."""
    merged: list[list[int]] = []
    for start, end in sorted((max(0, s), min(len(text), e)) for s, e in spans):
        if start >= end:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    pieces: list[tuple[str, str | None]] = []
    position = 0
    for start, end in merged:
        if start > position:
            pieces.append((text[position:start], None))
        pieces.append((text[start:end], label))
        position = end
    if position < len(text):
        pieces.append((text[position:], None))
    return pieces


def _spans(view: PairView, source: str) -> list[tuple[int, int]]:
    return [(s["start"], s["end"]) for s in view.grounding_spans if s["source"] == source]


def cleaned_report(view: PairView) -> list[tuple[str, str | None]]:
    if view.cleaned_text is None:
        if not view.evidence:
            return [("(no report: this pair was imported from a WSI-Bench file, which carries no report and no "
                     "quoted evidence; judge the question and answer on their own)", None)]
        note = "(no report: this pair was imported; the evidence it quotes follows)\n"
        return [(note, None)] + [(quote + "\n", GROUNDING) for quote in view.evidence]
    return highlight(view.cleaned_text, _spans(view, "report"), GROUNDING)


def removed_by_cleaning(view: PairView) -> list[tuple[str, str | None]]:
    """The original report with every removed segment labelled `removed: <category>`."""
    if not view.report_text:
        return [("(no original report stored for this pair)", None)]
    pieces: list[tuple[str, str | None]] = []
    position = 0
    for segment in sorted(view.removed, key=lambda d: d["start"]):
        start, end = max(position, segment["start"]), segment["end"]
        if start > position:
            pieces.append((view.report_text[position:start], None))
        if end > start:
            pieces.append((view.report_text[start:end], f"removed: {segment.get('category') or 'other'}"))
        position = max(position, end)
    pieces.append((view.report_text[position:], None))
    return [p for p in pieces if p[0]]


def enrichment(view: PairView) -> list[tuple[str, str | None]] | None:
    """The enrichment text, all of it labelled inferred, the parts grounding the answer labelled so."""
    if not view.enrichment or not view.enrichment.get("text"):
        return None
    text = view.enrichment["text"]
    return [(piece, label or INFERRED) for piece, label in highlight(text, _spans(view, "enrichment"), GROUNDING)]


def enrichment_label(view: PairView) -> str:
    if not view.enrichment:
        return "Enrichment: none for this pair"
    who = view.enrichment.get("who_reference") or "no reference given"
    return (f"Enrichment, INFERRED by {view.provenance.get('enrichment') or 'a model'} (diagnosis "
            f"{view.enrichment.get('diagnosis') or '?'}; {who}): not in the report")


def context(view: PairView) -> list[tuple[str, str | None]] | None:
    if not view.ihc_context:
        return None
    return highlight(view.ihc_context, _spans(view, "context"), GROUNDING)


def header(view: PairView) -> str:
    failed = ", ".join(view.checks_failed) or "none"
    lines = [f"### Pair {view.pair_id} · {md(view.task_title)} · slide `{view.slide_id}`",
             (f"version {view.version} · status **{view.status}** · {view.answer_format} · origin {view.origin} · "
              f"needs {view.required_reviews} review(s) · failed checks: **{md(failed)}**")]
    if view.inferred_answer or view.uses_enrichment:
        lines.append("**The answer is inferred** (from the enrichment, not stated in the report): check it closely."
                     if view.inferred_answer else "The pair uses the inferred enrichment.")
    if view.my_review is not None:
        mine = view.my_review
        lines.append(f"Your current verdict: **{mine.verdict}**{f' ({md(mine.reason)})' if mine.reason else ''} "
                     "(Alt+U takes it back).")
    others = [r for r in view.reviews if r.annotator != (view.my_review.annotator if view.my_review else None)]
    if view.blind:
        lines.append("Blind mode: other annotators' verdicts are hidden.")
    elif others:
        lines.append("Other events: " + "; ".join(
            f"{md(r.annotator)} {r.kind} {r.verdict}{f' ({md(r.reason)})' if r.reason else ''}"
            f"{f' “{md(r.comment)}”' if r.comment else ''}" for r in others[-8:]))
    if view.assigned:
        lines.append("Assigned to: " + ", ".join(md(a) for a in view.assigned))
    return "\n\n".join(lines)


def checks_table(view: PairView) -> list[list[str]]:
    return [[c.get("name", ""), c.get("status", ""), c.get("detail", "")] for c in view.checks]


def options_text(options: dict | None) -> str:
    return "\n".join(f"{key}) {value}" for key, value in sorted((options or {}).items()))


def parse_options(text: str) -> dict[str, str]:
    """`A) first`, `B. second`, `C: third` (one per line) -> {"A": "first", ...}."""
    options: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _OPTION_LINE.match(line)
        if not match:
            raise ReviewInputError(f"options line {number} ({line.strip()!r}) must look like 'A) text'.")
        if match.group(1) in options:
            raise ReviewInputError(f"options line {number}: letter {match.group(1)} appears twice.")
        options[match.group(1)] = match.group(2)
    if len(options) < 2:
        raise ReviewInputError("a multiple-choice pair needs at least two options, one per line as 'A) text'.")
    return options


def queue_rows(items: Sequence[QueueItem]) -> list[list]:
    return [[i.pair_id, TASKS_BY_ID[i.task].title, i.question[:160], i.status, ", ".join(i.checks_failed), i.slide_id]
            for i in items]


def progress_rows(people: Sequence[AnnotatorProgress]) -> list[list]:
    return [[p.name, p.role, p.assigned, p.reviewed, p.remaining, p.accepted, p.edited, p.rejected, p.adjudicated]
            for p in people]


def _shown(value) -> str:
    """A statistic as text: "—" when there is none yet (never Python's None)."""
    return "—" if value is None else str(value)


def stats_markdown(stats: dict) -> str:
    agreement = {key: _shown(value) if not isinstance(value, list) else value
                 for key, value in stats["agreement"].items()}
    pairs = "; ".join(f"{' / '.join(p['annotators'])}: {_shown(p['kappa'])} over {p['n_items']}"
                      for p in agreement["cohen_kappa_pairs"]) or "none yet"
    by_status = ", ".join(f"{k} {v}" for k, v in stats["by_status"].items())
    return "\n\n".join([
        (f"**{stats['pairs']} pairs** from {stats['reports']} reports · {by_status} · blind mode "
         f"**{'on' if stats['blind_mode'] else 'off'}** · {stats['audit_entries']} audit entries"),
        (f"**Agreement** over {agreement['n_items_multiply_rated']} pairs rated by two or more: percent agreement "
         f"{agreement['percent_agreement']} · mean Cohen's kappa {agreement['cohen_kappa_mean']} · Fleiss' kappa "
         f"{agreement['fleiss_kappa']} ({agreement['fleiss_raters_per_item']} raters on "
         f"{agreement['fleiss_n_items']} pairs)"),
        f"Cohen's kappa per annotator pair: {md(pairs)}",
        "Failed checks: " + (md(", ".join(f"{k} {v}" for k, v in stats["checks_failed"].items())) or "none")])


def by_task_rows(stats: dict) -> tuple[list[str], list[list]]:
    statuses = list(stats["by_status"])
    return ["task", *statuses, "total"], [[task, *(row[s] for s in statuses), row["total"]]
                                          for task, row in stats["by_task"].items()]


def thumbnail_path(thumbnails_dir: str | None, slide_id: str) -> str | None:
    """`<thumbnails_dir>/<slide_id>.png|.jpg|...` when present; nothing outside that folder is ever read."""
    if not thumbnails_dir or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}", slide_id or ""):
        return None
    root = Path(thumbnails_dir).resolve()
    for suffix in THUMBNAIL_SUFFIXES:
        candidate = (root / f"{slide_id}{suffix}").resolve()
        if candidate.is_relative_to(root) and candidate.is_file():
            return str(candidate)
    return None
