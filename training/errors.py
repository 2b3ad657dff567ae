"""The training package's exception type: bad configs, missing data or features, failed pushes."""


class TrainingError(Exception):
    """A training input or configuration problem; the message names the file/field and the fix."""
