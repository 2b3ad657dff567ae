"""The curation package's exception type: every user-facing failure in `curation/` raises a subclass."""


class CurationError(Exception):
    """A curation input, store or LLM problem; the message names the file/field and the fix."""
