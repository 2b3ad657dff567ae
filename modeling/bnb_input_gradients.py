"""Gradients through bitsandbytes 4-bit layers to their inputs, also on CPU.

bitsandbytes (0.50) on CPUs with AVX512-BF16 repacks a `Linear4bit`'s weights at its first inference
forward pass (eval mode, input without gradient) into a layout for a fast kernel that has no backward:
after any chat answer, a backward pass would run through that kernel and return wrong (zero)
gradients, with only a warning. `input_gradients_through_4bit(model)` unpacks such weights back to
the standard 4-bit layout (bitsandbytes' own inverse, as it does before saving) and keeps them from
being repacked until the block ends; the next inference forward repacks them again. On CUDA nothing
is packed, so this is a no-op there; models without 4-bit layers are left alone (bitsandbytes is not
even imported).

    with input_gradients_through_4bit(model):
        loss.backward()
"""

from __future__ import annotations

import contextlib
import sys

from modeling.errors import ModelError


def _four_bit_layers(model) -> list:
    if "bitsandbytes" not in sys.modules:       # never loaded: no 4-bit layers
        return []
    from bitsandbytes.nn import Linear4bit

    return [module for module in model.modules() if isinstance(module, Linear4bit)]


def _unpack(layer) -> None:
    state = getattr(layer.weight, "quant_state", None)
    if not getattr(state, "packing_format_for_cpu", False):
        return
    try:
        from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse
    except ImportError as exc:
        raise ModelError("this bitsandbytes version packs 4-bit weights for CPU inference in a layout without a "
                         "backward pass and offers no way back; compute heatmaps with the full-precision model "
                         "on CPU (no --load-4bit) or on CUDA.") from exc
    layer.weight.data, layer.weight.quant_state = _convert_weight_packed_for_cpu_inverse(layer.weight.data, state)


@contextlib.contextmanager
def input_gradients_through_4bit(model):
    """Within the block, 4-bit layers pass correct gradients to their inputs (see the module docstring)."""
    layers = _four_bit_layers(model)
    flags = [getattr(layer, "support_avx512bf16_for_cpu", False) for layer in layers]
    for layer in layers:
        layer.support_avx512bf16_for_cpu = False
        _unpack(layer)
    try:
        yield
    finally:
        for layer, flag in zip(layers, flags):
            layer.support_avx512bf16_for_cpu = flag
