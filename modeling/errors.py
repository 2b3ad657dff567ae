"""The modeling package's exception type.

`ModelError` is raised for user-facing problems in `modeling/` (missing or mismatched checkpoints,
gated Hub access without a token, invalid model configs). Messages name the file or field and the fix;
chain the underlying cause with `raise ModelError(...) from exc`. The slide pipeline in
`modeling/slide/` has its own `SlideError`.
"""


class ModelError(Exception):
    """A model, config or checkpoint problem the user can fix; the message says how."""
