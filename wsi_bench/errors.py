"""The WSI-Bench package's exception family: a file, record or task name that is not WSI-Bench.

Messages name the file, the record and the field, and say what would be accepted. Callers in other
packages catch `BenchError` and re-raise their own type with the context they add (`from exc`).
"""


class BenchError(Exception):
    """A WSI-Bench input problem; the message names the file/record/field and the fix."""


class BenchFormatError(BenchError):
    """A WSI-Bench file or record that does not follow either released format."""


class UnknownTaskError(BenchError):
    """A task name that is neither a WSI-Bench file stem, a metadata value, nor a task id."""
