"""The evaluation package's exception type: every user-facing failure in `evaluation/` raises a subclass.

Messages name the file, row or field and say how to fix it; the command line prints them without a
traceback and exits non-zero. Underlying causes are chained with `raise ... from exc`.
"""


class EvaluationError(Exception):
    """An evaluation input, judge or output problem; the message names the file/field and the fix."""


class PredictionFormatError(EvaluationError):
    """A predictions or references file that follows none of the accepted formats."""


class JudgeConfigError(EvaluationError):
    """A judge that cannot run as configured (unknown name, missing model or key, bad thresholds)."""


class SchemaError(EvaluationError):
    """A scores.jsonl / summary.json that does not match the schema version this code reads."""
