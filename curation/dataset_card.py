"""The dataset card (README.md) of an exported curation dataset: Hub YAML header and the facts a user needs.

Counts per task and split, provenance (generator models, prompt versions, cleaning/enrichment versions,
number of source reports), review statistics (status counts, agreement), how to load it, and the
licence note for TCGA-derived, LLM-generated text.
"""

from __future__ import annotations

LICENCE_NOTE = (
    "The questions and answers are derived from TCGA pathology reports (public data of the NCI Genomic Data "
    "Commons; follow its data use policy and cite TCGA) and were written by a large language model, then "
    "reviewed by the annotators listed in the statistics. Check the terms of the LLM provider used for "
    "generation before redistribution. Research use only; not for clinical decisions.")


def _yaml_list(values) -> str:
    return "[" + ", ".join(values) + "]"


def render_card(name: str, split_counts: dict[str, dict[str, int]], provenance: dict, review: dict,
                excluded: dict[str, int], licence: str = "other", repo_id: str | None = None) -> str:
    splits = [s for s in ("train", "validation", "test") if sum(split_counts.get(s, {}).values())]
    configs = "\n".join(f"  - split: {s}\n    path: data/{s}-*" for s in splits)
    header = (f"---\nlicense: {licence}\nlanguage:\n- en\npretty_name: {name}\n"
              f"task_categories:\n- visual-question-answering\ntags:\n- pathology\n- whole-slide-image\n"
              f"- wsi-bench\n- medical\nconfigs:\n- config_name: default\n  data_files:\n{configs}\n---\n")
    tasks = sorted({t for counts in split_counts.values() for t in counts})
    table = ["| task | " + " | ".join(splits) + " | total |", "|---|" + "---|" * (len(splits) + 1)]
    for task in tasks:
        row = [split_counts.get(s, {}).get(task, 0) for s in splits]
        table.append(f"| {task} | " + " | ".join(map(str, row)) + f" | {sum(row)} |")
    totals = [sum(split_counts.get(s, {}).values()) for s in splits]
    table.append("| **all** | " + " | ".join(map(str, totals)) + f" | {sum(totals)} |")
    agreement = review.get("agreement", {})
    load_id = repo_id or "path/to/this/folder"
    lines = [
        header, f"# {name}", "",
        "WSI-Bench-style visual question answering pairs about H&E whole slide images, produced by the "
        "WSI-LLaVA studio curation pipeline (cleaned reports -> LLM-generated pairs -> automatic checks -> "
        "human review) and exported from the review store. Only pairs whose final verdict is *accepted* or "
        "*edited* are included; edits replace the generated text.", "",
        "## Splits", "", "Split by patient (TCGA case barcode): no patient appears in two splits.", "",
        *table, "",
        "## Files", "",
        "- `data/{split}-*.parquet`: one row per pair with provenance and review columns (`load_dataset`).",
        "- `llava/{Task}_{split}.json`: WSI-Bench LLaVA conversation files (one per task and split).",
        "- `jsonl/WSI-Bench-{split}.jsonl`: the official WSI-Bench JSONL layout "
        "(question_id, image, question, T-answer, metadata).",
        "- `summary.json`: every count of this export.", "",
        "```python", "from datasets import load_dataset", f'ds = load_dataset("{load_id}")', "```", "",
        "## Provenance", "",
        f"- Source reports: {provenance.get('source_reports', 0)} (SHA-256 of each in `source_report_sha256`)",
        f"- Generator models: {', '.join(provenance.get('generator_models', [])) or 'none'}",
        f"- Prompt versions: {', '.join(provenance.get('prompt_versions', [])) or 'none'}",
        f"- Origins: {', '.join(f'{k}: {v}' for k, v in provenance.get('origins', {}).items()) or 'none'}",
        f"- Pairs relying on inferred (WHO-guided) morphology: {provenance.get('uses_enrichment', 0)}",
        f"- Exported pairs with a failed automatic check (kept after human review): "
        f"{provenance.get('checks_failed', 0)}", "",
        "## Review", "",
        "| status in the store | pairs |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in review.get("by_status", {}).items()], "",
        f"Excluded from this export: {', '.join(f'{k}: {v}' for k, v in excluded.items()) or 'nothing'}.", "",
        f"Agreement over {agreement.get('n_items_multiply_rated', 0)} multiply-reviewed pairs: percent agreement "
        f"{agreement.get('percent_agreement')}, mean Cohen's kappa {agreement.get('cohen_kappa_mean')}, Fleiss' "
        f"kappa {agreement.get('fleiss_kappa')} ({agreement.get('fleiss_raters_per_item')} raters per item).", "",
        "## Licence", "", LICENCE_NOTE, "",
    ]
    return "\n".join(lines)
