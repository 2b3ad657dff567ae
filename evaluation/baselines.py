"""The paper's published baselines (Table 2 and Table 3), shipped with the package as `baselines.json`.

    tables = load_baselines()
    tables["table2"]["rows"]["WSI-LLaVA"]["diagnosis.accuracy"]   # 0.863
    tables["table3"]["rows"]["GPT-4o"]["meteor"]                  # 0.167

Column keys match summary.json (`table2.ours` / `table3.ours`): "<capability>.<metric>" and "avg" for
Table 2, metric names for Table 3. The numbers are copied from ../shared/notes/wsi-llava.md.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

from evaluation.errors import EvaluationError

TABLE2_CAPABILITIES = ("morphological_analysis", "diagnosis", "treatment_planning")
TABLE2_METRICS = ("wsi_precision", "wsi_relevance", "accuracy")
TABLE2_COLUMNS = tuple(f"{cap}.{metric}" for cap in TABLE2_CAPABILITIES for metric in TABLE2_METRICS) + ("avg",)
TABLE3_COLUMNS = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "meteor", "wsi_precision", "wsi_relevance")


@functools.lru_cache(maxsize=1)
def _raw() -> dict:
    try:
        text = resources.files("evaluation").joinpath("baselines.json").read_text(encoding="utf-8")
        return json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        raise EvaluationError(f"evaluation/baselines.json is missing or broken ({exc}); reinstall the "
                              "package.") from exc


def load_baselines() -> dict:
    """{"source": str, "table2": {...}, "table3": {...}}, each table {"title", "columns", "rows": {model:
    {column: value}}}. Raises EvaluationError if the shipped file does not match the expected columns."""
    raw = _raw()
    tables = {"source": raw.get("source", "")}
    for name, expected in (("table2", TABLE2_COLUMNS), ("table3", TABLE3_COLUMNS)):
        table = raw.get(name) or {}
        columns = tuple(table.get("columns") or ())
        if columns != expected:
            raise EvaluationError(f"evaluation/baselines.json: {name}.columns must be {list(expected)}, "
                                  f"got {list(columns)}.")
        rows = {}
        for model, values in (table.get("rows") or {}).items():
            if len(values) != len(columns):
                raise EvaluationError(f"evaluation/baselines.json: {name} row {model!r} has {len(values)} "
                                      f"values for {len(columns)} columns.")
            rows[model] = dict(zip(columns, values))
        tables[name] = {"title": table.get("title", name), "columns": list(columns), "rows": rows}
    return tables
