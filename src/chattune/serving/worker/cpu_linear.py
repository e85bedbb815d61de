"""oneDNN's prepacked matmul for a served model's linear layers on a CPU.

``torch.nn.Linear`` on a CPU hands oneDNN its weight in the plain layout, and every call
converts it to the blocked layout oneDNN's kernels read. Decoding streams every weight at
every step, so that conversion is paid for every weight at every step. Packed once at load
(what IPEX, vLLM's CPU backend and inductor's freezing do), the linear layers of one SmolLM2
decoding step took, on the 2-core CPU this was written on, 30.6 ms instead of 48.4 for 16
rows in bf16 (1.58x) and 29.4 instead of 37.8 for one row; 54.3 instead of 93.5 in float32.
bf16 results are bitwise equal to ``torch.nn.functional.linear``'s; float32 ones differ in
the last bits (oneDNN sums in another order).

oneDNN packs bf16 weights only on CPUs with AVX512-BW/VL/DQ or AVX-NE-CONVERT; on an
AVX2-only CPU (or with ``ONEDNN_MAX_CPU_ISA=AVX2``, which makes oneDNN act as on one)
bf16 layers stay plain (:func:`bf16_packing`) and float32 ones are still packed.

Imported only by the engines (it imports torch).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

log = logging.getLogger("chattune.serving.engine")


class PackedLinear(torch.nn.Module):
    """A ``torch.nn.Linear`` whose weight oneDNN has packed for ``batch_hint`` rows.

    Inference only: the packed weight is not a parameter (no gradient, not in the state
    dict, not moved by ``.to()``).
    """

    def __init__(self, linear: torch.nn.Linear, batch_hint: int) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach()
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight, batch_hint)
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")


def bf16_packing() -> bool:
    """Whether oneDNN packs bf16 weights on this CPU (it refuses on AVX2-only CPUs)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        torch.ops.mkldnn._reorder_linear_weight(torch.zeros(8, 8, dtype=torch.bfloat16), 1)
    except RuntimeError:
        return False
    return True


def pack_linears(model: Any, batch_hint: int) -> int:
    """Replace every plain CPU ``torch.nn.Linear`` of ``model`` (float32, and bf16 where
    :func:`bf16_packing`) by a :class:`PackedLinear`; how many were replaced (0 where
    oneDNN is not available)."""
    if not torch.backends.mkldnn.is_available():
        return 0
    dtypes = (torch.float32, torch.bfloat16) if bf16_packing() else (torch.float32,)
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if _packable(child) and child.weight.dtype in dtypes:
                setattr(parent, name, PackedLinear(child, batch_hint))
                count += 1
    return count


def _packable(module: torch.nn.Module) -> bool:
    if type(module) is not torch.nn.Linear:  # subclasses (LoRA, quantized) keep their own
        return False
    weight = module.weight
    return weight.device.type == "cpu" and weight.dtype in (torch.float32, torch.bfloat16)
