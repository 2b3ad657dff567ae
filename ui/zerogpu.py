"""ZeroGPU support: `gpu(...)` is Hugging Face's `spaces.GPU` on a ZeroGPU Space and a no-op elsewhere.

Decorate the functions that run on the GPU (model loading, generation, slide encoding):

    @gpu(duration=120)
    def answer(...): ...

The repository's own `spaces/` folder (the Space card) has no `__init__.py`, so `import spaces` finds
Hugging Face's package when it is installed and otherwise an empty namespace package: that case, like
an ImportError, means "not on ZeroGPU".
"""

from __future__ import annotations

from typing import Callable


def _zerogpu_decorator() -> Callable | None:
    try:
        import spaces
    except ImportError:
        return None
    return getattr(spaces, "GPU", None)


_SPACES_GPU = _zerogpu_decorator()
ON_ZEROGPU = _SPACES_GPU is not None


def gpu(function: Callable | None = None, **kwargs):
    """`@gpu`, `@gpu()` or `@gpu(duration=120)`: `spaces.GPU` when present, else the function itself."""
    if _SPACES_GPU is None:
        return function if function is not None else (lambda f: f)
    if function is not None:
        return _SPACES_GPU(function)
    return _SPACES_GPU(**kwargs)
