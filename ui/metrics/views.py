"""What the Metrics tab says, as text: the status line over the runs on screen, one item's drill-down, a
refused upload's message, the results folder's run list. Pure functions (no components), tested without a
server; `ui.metrics.handlers` puts them on screen.
"""

from __future__ import annotations

from pathlib import Path

from evaluation.results_view import Run, find_runs

NO_RUN = "No run loaded: the baselines only."


def status_markdown(runs: list[Run]) -> str:
    """The status line above the charts: how many runs are on screen and their labels (one line per fact
    about the runs goes here)."""
    if not runs:
        return NO_RUN
    return f"{len(runs)} run(s): " + "; ".join(run.caption for run in runs)


def _number(value) -> str:
    return "—" if value is None else f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


def detail_markdown(detail: dict) -> str:
    """One item of a run (`evaluation.results_view.item_detail`): question, reference, prediction, its scores."""
    metrics = detail["metrics"]
    lines = [f"### {detail['task']} · `{detail['question_id']}`",
             "**Approximate judge (offline).**" if detail["approximate"] else "",
             f"**Question.** {detail['question']}", f"**Reference.** {detail['reference']}",
             f"**Prediction.** {detail['prediction']}"]
    if detail["accuracy"]:
        acc = detail["accuracy"]
        verdict = {True: "correct", False: "wrong", None: "not decidable (reference unreadable)"}[acc["correct"]]
        read = (f"the prediction reads as {acc['extracted']!r} (rule {acc['rule']})" if acc["extracted"] is not None
                else "no option or yes/no could be read from the prediction")
        lines.append(f"**Accuracy.** {verdict}: {read}; reference {acc['reference_answer']!r}.")
    else:
        lines.append(f"**WSI-Precision** {_number(metrics['wsi_precision'])} ({metrics['wsi_precision_status']}) · "
                     f"**WSI-Relevance** {_number(metrics['wsi_relevance'])} ({metrics['wsi_relevance_status']})")
    if detail["nlu"]:
        lines.append("**NLU.** " + ", ".join(f"{k} {v:.3f}" for k, v in detail["nlu"].items() if v is not None))
    judge = detail["judge"] or {}
    if judge.get("name"):
        lines.append(f"_Judge: {judge['name']} {judge.get('model') or ''}, prompt version {detail['prompt_version']}_")
    else:
        lines.append(f"_Scored by answer extraction (no judge), extractor version {detail['prompt_version']}_")
    return "\n\n".join(line for line in lines if line)


def claim_rows(detail: dict) -> list[list]:
    return [[c["metric"], c["claim"], c["score"], c["explanation"]] for c in detail["claims"]]


def folder_choices(results_root: str | Path | None) -> list[str]:
    """The runs under the results folder, as paths relative to it."""
    if not results_root:
        return []
    root = Path(results_root)
    return [str(p.relative_to(root)) for p in find_runs(root)]


def public_text(text: str, results_root: str | Path | None) -> str:
    """`text` without the server's results folder: runs are named by their path inside it."""
    if not results_root:
        return text
    root = str(Path(results_root).resolve())             # the form the runs' messages use (absolute)
    if root == "/":
        return text
    return text.replace(root + "/", "").replace(root, "the results folder")


def upload_message(text: str, paths: list[str]) -> str:
    """A refused upload said with the file names only (never the server's upload folders), and what to do."""
    for path in paths:
        text = text.replace(str(path), Path(path).name)
    if "missing field 'schema'" in text:
        text += (" This is not an output of `wsi-llava evaluate score`: upload the summary.json and/or "
                 "scores.jsonl it wrote (a predictions file must be scored first: `wsi-llava evaluate score "
                 "PREDICTIONS --out DIR`).")
    if "per run" in text:
        text += " Upload one run's files at a time (the box is emptied after each run)."
    return text
