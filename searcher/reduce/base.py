"""The one signature every reducer has: ``reducer(inp: ReduceInput, r: int, **params) -> Plan | None``.

A reducer is a pure function. It reads the block's residual stream, its attention keys (averaged over heads)
and, lazily, the CLS attention row; it returns a :class:`~searcher.reduce.merge.Plan` (index tensors) or
``None`` when nothing changes (``r == 0``, or the 50 % cap leaves nothing to remove). It never mutates its
inputs and computes its indices without gradients; :func:`~searcher.reduce.merge.apply_plan` applies the plan.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from ..schedule import effective_r
from .merge import Plan

__all__ = ["ReduceInput", "Reducer", "capped_r"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReduceInput:
    """What a block hands to a reducer, between its attention and its MLP."""

    x: Tensor  # (B, N, C) residual stream after ``x + attn(norm1(x))``
    metric: Tensor  # (B, N, d) attention keys averaged over heads (not normalised)
    num_prefix: int = 1  # protected prefix tokens at the front: CLS, distillation, registers
    sizes: Tensor | None = None  # (B, N, 1) token sizes, None while all ones
    cls_attn: Callable[[], Tensor] | None = None  # → (B, N) CLS attention row averaged over heads
    layer: int = 0  # block index
    depth: int = 1  # number of blocks

    def cls_attention(self, op: str) -> Tensor:
        """The CLS attention row (B, N); raises when the model has none (no class token)."""
        if self.cls_attn is None or self.num_prefix < 1:
            raise ValueError(f"op {op!r} ranks tokens by CLS attention, but no CLS attention row was given")
        return self.cls_attn()


# ``reducer(inp, r, **params) -> Plan | None``; params are the schedule layer's (``tau``, ``margin``, …).
Reducer = Callable[..., Plan | None]


def capped_r(r: int, n_tokens: int, num_prefix: int) -> int:
    """Validate ``r`` and apply the 50 % cap of :func:`searcher.schedule.effective_r`."""
    if not isinstance(r, int) or isinstance(r, bool) or r < 0:
        raise ValueError(f"r must be a non-negative integer (tokens removed in this block), got {r=}")
    if num_prefix < 0 or num_prefix > n_tokens:
        raise ValueError(f"num_prefix must be in [0, {n_tokens}], got {num_prefix=}")
    return effective_r(r, n_tokens, num_prefix)
