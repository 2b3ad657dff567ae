"""summary.json -> summary.md: the paper's Table 2 and Table 3 with this run beside the published baselines,
then every task, the inputs that could not be used, the items left out of a mean and the judge failures.
The metric version is in the header; Table 2's accuracy cells carry their grouping's label."""

from __future__ import annotations

from evaluation.baselines import TABLE2_CAPABILITIES, TABLE3_COLUMNS, load_baselines

_CAP_SHORT = {"morphological_analysis": "Morph", "diagnosis": "Diag", "treatment_planning": "Treat"}
_METRIC_SHORT = {"wsi_precision": "P", "wsi_relevance": "R", "accuracy": "Acc"}
_TABLE3_TITLES = {"bleu_1": "BLEU-1", "bleu_2": "BLEU-2", "bleu_3": "BLEU-3", "bleu_4": "BLEU-4",
                  "rouge_l": "ROUGE-L", "meteor": "METEOR", "wsi_precision": "WSI-P", "wsi_relevance": "WSI-R",
                  "cider": "CIDEr"}
MAX_LISTED = 50


def _fmt(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _this_run_label(summary: dict) -> str:
    judge = summary["judge"] or {}
    models = ", ".join(summary["run"].get("models") or []) or "this run"
    label = f"**{models}** (judge: {judge.get('name', 'none')}"
    label += f" {judge.get('model')}" if judge.get("model") else ""
    return label + (", APPROXIMATE)" if summary["approximate"] else ")")


def _table2(summary: dict) -> list[str]:
    table = summary["table2"]
    labels = table.get("cell_labels") or {}
    header = ["Model"] + [f"{_CAP_SHORT[c]} {_METRIC_SHORT[m]}" for c in TABLE2_CAPABILITIES
                          for m in ("wsi_precision", "wsi_relevance", "accuracy")] + ["Avg"]
    lines = ["## Table 2: WSI-Precision / WSI-Relevance (open) and accuracy (closed)", "",
             _row(header), _row(["---"] * len(header))]
    for model, values in load_baselines()["table2"]["rows"].items():
        lines.append(_row([model] + [_fmt(values[c]) for c in table["columns"]]))
    lines.append(_row([_this_run_label(summary)] + [
        _fmt(table["ours"][c]) + (" †" if c in labels and table["ours"][c] is not None else "")
        for c in table["columns"]]))
    counts = [str(table["ours_n"][c]) if c != "avg" else "" for c in table["columns"]]
    lines.append(_row(["items (n)"] + counts))
    lines.append("")
    grouping = table.get("closed_grouping")
    if grouping:
        cells = "; ".join(f"{_CAP_SHORT[c]} = {' + '.join(t) or 'none'}" for c, t in grouping["cells"].items())
        lines.append(f"† {grouping['label']} (`--table2-grouping {grouping['name']}`): {cells}"
                     + (f"; not counted: {', '.join(grouping['not_counted'])}" if grouping["not_counted"] else "")
                     + ("; each (patient, question) once" if grouping["one_per_patient_question"] else "")
                     + (f" ({grouping['n_collapsed_repeats']} repeats not counted)"
                        if grouping.get("n_collapsed_repeats") else "")
                     + f". {grouping['description']}; evidence: {grouping['evidence']}. Per-task accuracies: "
                     "see Per task.")
        lines.append("")
    if not table["avg_complete"]:
        lines.append("Avg is over the cells that have items only (the paper averages all nine).")
        lines.append("")
    return lines


def _table3(summary: dict) -> list[str]:
    table = summary["table3"]
    columns = list(TABLE3_COLUMNS) + ["cider"]
    header = ["Model"] + [_TABLE3_TITLES[c] for c in columns]
    lines = ["## Table 3: report generation", "", _row(header), _row(["---"] * len(header))]
    for model, values in load_baselines()["table3"]["rows"].items():
        lines.append(_row([model] + [_fmt(values.get(c), 4) for c in columns]))
    lines.append(_row([_this_run_label(summary)] + [_fmt(table["ours"].get(c), 4) for c in columns]))
    lines += ["", f"Report-generation items: {table['n']}. CIDEr is not in the paper (pycocoevalcap CIDEr-D, "
                  "x10 scale).", ""]
    return lines


def _metric_cell(block: dict | None) -> str:
    if block is None:
        return "–"
    extra = [f"{block[k]} {label}" for k, label in (("n_failed", "failed"), ("n_no_claims", "no claims"),
                                                     ("n_blank_prediction", "blank"),
                                                     ("n_not_addressed", "none addressed")) if block.get(k)]
    return _fmt(block["mean"]) + (f" ({', '.join(extra)})" if extra else "")


def _tasks(summary: dict) -> list[str]:
    header = ["Task", "Capability", "n", "WSI-P", "WSI-R", "Acc", "Majority baseline", "Unparsed"]
    lines = ["## Per task", "", _row(header), _row(["---"] * len(header))]
    for task, group in summary["tasks"].items():
        acc = group["accuracy"]
        lines.append(_row([group["title"], group["capability"], str(group["n_items"]),
                           _metric_cell(group["wsi_precision"]), _metric_cell(group["wsi_relevance"]),
                           _fmt(acc["mean"]) if acc else "–",
                           (f"{_fmt(acc['majority_baseline'])} ({acc.get('majority_answer')})" if acc else "–"),
                           str(acc["n_unparsed"]) if acc else "–"]))
    overall = summary["overall"]
    lines.append(_row(["**Overall**", "", str(overall["n_items"]), _metric_cell(overall["wsi_precision"]),
                       _metric_cell(overall["wsi_relevance"]),
                       _fmt(overall["accuracy"]["mean"]) if overall["accuracy"] else "–",
                       _fmt(overall["accuracy"]["majority_baseline"]) if overall["accuracy"] else "–",
                       str(overall["accuracy"]["n_unparsed"]) if overall["accuracy"] else "–"]))
    return lines + [""]


def _inputs_and_failures(summary: dict) -> list[str]:
    inputs = summary["inputs"]
    lines = ["## Inputs", "",
             f"- predictions: `{inputs['path']}` ({', '.join(inputs['formats']) or 'no rows'}), {inputs['n_rows']} "
             f"rows -> {inputs['n_items']} items" + (f"; references: `{inputs['references']}`"
                                                     if inputs["references"] else ""),
             f"- unmatched rows: {inputs['n_unmatched']}; references without a prediction: {inputs['n_missing']}; "
             f"duplicate rows: {inputs['n_duplicates']}; skipped input lines: {inputs['n_problems']}"]
    for problem in inputs.get("problems", [])[:MAX_LISTED]:
        lines.append(f"  - skipped: {problem}")
    if inputs["n_problems"] > MAX_LISTED:
        lines.append(f"  - ... {inputs['n_problems'] - MAX_LISTED} more skipped in summary.json")
    for entry in inputs["unmatched"][:MAX_LISTED]:
        lines.append(f"  - unmatched `{entry['source']}` (id {entry['question_id']}): {entry['reason']}")
    if inputs["n_unmatched"] > MAX_LISTED:
        lines.append(f"  - ... {inputs['n_unmatched'] - MAX_LISTED} more in summary.json")
    stats = summary["judge_stats"]
    judge = summary["judge"]
    lines += ["", "## Judge", ""]
    if judge:
        lines.append(f"- {judge['name']} `{judge['model']}`, prompt version `{judge['prompt_version']}`"
                     + (" (APPROXIMATE)" if judge["approximate"] else ""))
        lines += [f"  - {key}: {value}" for key, value in judge["details"].items()]
    else:
        lines.append("- none (no open-ended items)")
    adjusted = stats.get("request_adjustments") or {}
    lines.append("- usage: " + ", ".join(f"{k} {v}" for k, v in stats.items() if k != "request_adjustments"))
    if adjusted:
        lines.append("- the model refused request parameters: " + "; ".join(f"{k} {v}" for k, v in adjusted.items()))
    if summary["nlu_settings"]:
        lines += ["- NLU: " + "; ".join(f"{k}: {v}" for k, v in summary["nlu_settings"].items())]
    lines += _excluded(summary)
    fails = summary["failures"]
    lines += ["", f"## Failed judgements: {len(fails)}", ""]
    if fails:
        lines.append("Failed items are left out of the means (never counted as 0). Re-run the same command to "
                     "retry them; finished items are reused.")
        for entry in fails[:MAX_LISTED]:
            lines.append(f"- {entry['task']} `{entry['question_id']}` {entry['metric']} at {entry['stage']}: "
                         f"{entry['error']}")
        if len(fails) > MAX_LISTED:
            lines.append(f"- ... {len(fails) - MAX_LISTED} more in summary.json")
    invalid = summary.get("invalid_references") or []
    if invalid:
        lines += ["", f"## Invalid references: {len(invalid)}", "",
                  "Closed items whose reference is not one option letter / Yes / No; left out of the accuracy."]
        for entry in invalid[:MAX_LISTED]:
            lines.append(f"- {entry['task']} `{entry['question_id']}` {entry['reference']!r}: {entry['problem']}")
        if len(invalid) > MAX_LISTED:
            lines.append(f"- ... {len(invalid) - MAX_LISTED} more in summary.json")
    return lines + [""]


def _excluded(summary: dict) -> list[str]:
    left_out = summary.get("excluded") or []
    if not left_out:
        return []
    lines = ["", f"## Left out of a mean (not failures): {len(left_out)}", "",
             "Items with no score for a metric, as the metric version defines (listed, never dropped silently)."]
    for entry in left_out[:MAX_LISTED]:
        lines.append(f"- {entry['task']} `{entry['question_id']}` {entry['metric']}: {entry['reason']}")
    if len(left_out) > MAX_LISTED:
        lines.append(f"- ... {len(left_out) - MAX_LISTED} more in summary.json")
    return lines


def _version_line(summary: dict) -> list[str]:
    version = summary.get("metric_version")
    if not version:
        return ["Metric version: `strict` (written before metric versions were recorded).", ""]
    return [f"Metric version: **`{version['name']}`**, {version['title']}: reference claims from "
            f"{version['reference_claims_from']}; WSI-R claims the ground truth does not address: "
            f"{version['unaddressed_claims']}; rounding: "
            f"{'items and means to ' + str(version['round_digits']) + ' places' if version['round_digits'] else 'none'}"
            f"; blank predictions: {version['blank_predictions']}. (evaluation/README.md compares the versions.)", ""]


def render_summary_md(summary: dict) -> str:
    lines = ["# WSI-Bench evaluation", ""]
    if summary["approximate"]:
        lines += ["> **APPROXIMATE**: WSI-Precision / WSI-Relevance here come from the offline embedding judge, "
                  "not the paper's LLM judge. Do not compare them with the published numbers.", ""]
    n_failed = len(summary["failures"])
    if n_failed:
        lines += [f"> **{n_failed} judgement(s) failed** and are excluded from the means; see the end.", ""]
    lines += [f"Created {summary['created_at']}; judge prompt version "
              f"`{(summary['judge'] or {}).get('prompt_version', '–')}`; answer extractor "
              f"`{summary['answer_extractor_version']}`. Published baselines: paper project page (Dec 2024).", ""]
    lines += _version_line(summary)
    return "\n".join(lines + _table2(summary) + _table3(summary) + _tasks(summary) + _inputs_and_failures(summary))
