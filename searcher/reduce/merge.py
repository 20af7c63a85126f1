"""A reduction as index tensors (:class:`Plan`) and the one function that applies it (:func:`apply_plan`).

Every reducer only *decides* (under ``no_grad``): which input tokens are kept and in what order, and which
input tokens fold into which kept token, and how. :func:`apply_plan` then applies that decision to the
residual stream ``x``, the token sizes, the (row, col) positions and the optional source map alike, with
gathers and ``scatter_add`` followed by a division by the summed sizes (no ``scatter_reduce('mean')``), so
that a reduction exports to ONNX with static token counts. Only MLERP's group-max norm uses
``scatter_reduce('amax')``; during ONNX export (``searcher onnx``) it is computed densely instead (a
(B, M, R) comparison of the destination slots, then ``ReduceMax``), which every opset from 17 on can express —
``ScatterElements`` with ``reduction='max'`` needs opset 18.

Fold modes (REDUCERS.md "Shared pieces"):

- ``"wavg"`` size-weighted merge (ToMe): ``x_j' = (s_j x_j + Σ s_i x_i) / (s_j + Σ s_i)``,
  ``s_j' = s_j + Σ s_i``;
- ``"mlerp"`` ToFu's MLERP: the size-weighted mean ``x̄`` rescaled to the largest norm in the group,
  ``x' = x̄ · max_g ‖x_g‖ / ‖x̄‖`` (the norm of the *mean*, not of the pre-merge destination);
- ``"avg"`` unweighted mean of the group (DiffRate's ``scatter_reduce('mean')``), sizes summed;
- ``"sum"`` weighted sum into new, empty slots (EViT's fused token ``Σ a_i x_i``); a new slot has size 1.

Pruned tokens are simply in neither ``keep`` nor ``src``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Plan", "apply_plan", "gather_tokens", "FOLD_MODES", "mlerp"]

logger = logging.getLogger(__name__)

FOLD_MODES = ("wavg", "mlerp", "avg", "sum")


@dataclass(frozen=True)
class Plan:
    """One block's reduction as index tensors (batch-first, ``long``), decided without gradients."""

    keep: Tensor  # (B, M) input index of each kept token, in output order
    src: Tensor | None = None  # (B, R) input indices folded into an output slot (None: pure prune/reorder)
    dst: Tensor | None = None  # (B, R) output slot in [0, M + n_new) of each src
    mode: str = "wavg"  # how src tokens fold into their slot: one of FOLD_MODES
    weight: Tensor | None = None  # (B, R) per-src weight for mode "sum"
    size_scale: Tensor | None = (
        None  # (B, R) multiplier on the src sizes (DiffRate's similarity-weighted size)
    )
    n_new: int = 0  # empty slots appended after the kept tokens (EViT's fused token)

    def __post_init__(self) -> None:
        if self.mode not in FOLD_MODES:
            raise ValueError(f"unknown fold mode {self.mode!r}; known: {FOLD_MODES}")
        if (self.src is None) != (self.dst is None):
            raise ValueError("a plan needs both src and dst, or neither")
        if self.n_new and self.mode != "sum":
            raise ValueError(f"new slots are only filled by mode 'sum', got mode={self.mode!r}")

    @property
    def n_out(self) -> int:
        return self.keep.shape[1] + self.n_new


def gather_tokens(t: Tensor, idx: Tensor) -> Tensor:
    """``t[b, idx[b]]`` for a (B, N, C) tensor and (B, M) indices → (B, M, C)."""
    return t.gather(1, idx.unsqueeze(-1).expand(-1, -1, t.shape[-1]))


def _scatter_add(out: Tensor, dst: Tensor, values: Tensor) -> Tensor:
    """``out[b, dst[b, i]] += values[b, i]`` over tokens; out (B, M, C), dst (B, R), values (B, R, C)."""
    return out.scatter_add(1, dst.unsqueeze(-1).expand(-1, -1, out.shape[-1]), values)


def _group_max(out: Tensor, dst: Tensor, values: Tensor) -> Tensor:
    """``max(out[b, m], max_{i: dst[b, i] = m} values[b, i])``; out (B, M, 1), dst (B, R), values (B, R, 1).

    ``scatter_reduce('amax')`` in eager mode; while exporting to ONNX a dense (B, M, R) masked ``amax``, which
    gives the same values with opset 17 operators (``Equal``, ``Where``, ``ReduceMax``).
    """
    if not torch.onnx.is_in_onnx_export():
        return out.scatter_reduce(1, dst.unsqueeze(-1), values, "amax")
    slots = torch.arange(out.shape[1], device=dst.device).view(1, -1, 1)  # (1, M, 1)
    hit = dst.unsqueeze(1) == slots  # (B, M, R): does src i fold into slot m?
    grouped = torch.where(hit, values.transpose(1, 2), torch.finfo(values.dtype).min)
    return torch.maximum(out, grouped.amax(dim=-1, keepdim=True))


def _pad_new(t: Tensor, n_new: int) -> Tensor:
    if not n_new:
        return t
    return torch.cat([t, t.new_zeros(t.shape[0], n_new, t.shape[2])], dim=1)


def mlerp(mean: Tensor, max_norm: Tensor, eps: float = 1e-6) -> Tensor:
    """ToFu's MLERP (Kim et al., WACV'24, eq. 5): rescale the group mean to the group's largest norm.

    mean (..., C), max_norm (..., 1) → ``mean · max_norm / ‖mean‖``.
    """
    return mean * (max_norm / mean.norm(dim=-1, keepdim=True).clamp_min(eps))


def apply_plan(
    plan: Plan,
    x: Tensor,
    sizes: Tensor | None,
    positions: Tensor | None = None,
    source: Tensor | None = None,
    anchor: bool = False,
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """Apply ``plan`` to x (B,N,C), sizes (B,N,1) float32 or None (all ones), positions (B,N,2), source
    (B,N,N0).

    A merged group's position is its size-weighted centroid, or with ``anchor`` the position of the kept
    token it merged into (EViT's fused token, a new slot, always takes the attention-weighted centroid).

    Returns the reduced tensors; ``sizes`` stays ``None`` while every output token still has size 1 (pure
    prunes and EViT's fused token), so proportional attention stays off and fused attention stays fast.
    """
    keep, src, dst = plan.keep, plan.src, plan.dst
    if src is None or dst is None:  # prune / reorder only
        return (
            gather_tokens(x, keep),
            None if sizes is None else gather_tokens(sizes, keep),
            None if positions is None else gather_tokens(positions, keep),
            None if source is None else gather_tokens(source, keep),
        )

    s = sizes if sizes is not None else x.new_ones(x.shape[0], x.shape[1], 1, dtype=torch.float32)
    if plan.mode == "sum":  # EViT fused token(s): weighted sum into new slots, sizes unchanged (new slot: 1)
        assert plan.weight is not None, "mode 'sum' needs weights"
        w = plan.weight.unsqueeze(-1)  # (B, R, 1)
        fused = gather_tokens(x, src) * w.to(x.dtype)
        out = _scatter_add(_pad_new(gather_tokens(x, keep), plan.n_new), dst, fused)
        new_sizes = None
        if sizes is not None:
            new_sizes = torch.cat(
                [gather_tokens(sizes, keep), sizes.new_ones(x.shape[0], plan.n_new, 1)], dim=1
            )
        new_pos = None
        if positions is not None:  # centroid of the fused tokens, weighted by their attention
            wp = w.float()
            kept_pos = gather_tokens(positions, keep)
            num = _scatter_add(_pad_new(kept_pos, plan.n_new), dst, gather_tokens(positions, src) * wp)
            den = _scatter_add(_pad_new(torch.ones_like(kept_pos[..., :1]), plan.n_new), dst, wp)
            new_pos = num / den.clamp_min(1e-12)  # kept slots receive nothing: den = 1
        new_source = None
        if source is not None:
            kept_source = _pad_new(gather_tokens(source, keep), plan.n_new)
            new_source = _scatter_add(kept_source, dst, gather_tokens(source, src))
        return out, new_sizes, new_pos, new_source

    s_src = gather_tokens(s, src)  # (B, R, 1)
    size_src = s_src if plan.size_scale is None else s_src * plan.size_scale.unsqueeze(-1).to(s_src.dtype)
    new_sizes = _scatter_add(gather_tokens(s, keep), dst, size_src)  # (B, M, 1) float32

    # group sums in float32 for half-precision tokens: a size-73 token of activations near 1500 overflows float16
    acc = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    xa = x.to(acc)
    if plan.mode == "avg":  # unweighted group mean (DiffRate)
        count = _scatter_add(torch.ones_like(gather_tokens(s, keep)), dst, torch.ones_like(s_src))
        out = (_scatter_add(gather_tokens(xa, keep), dst, gather_tokens(xa, src)) / count.to(acc)).to(x.dtype)
    else:  # size-weighted mean ("wavg"), then MLERP's norm rescale ("mlerp")
        xs = xa * s.to(acc)
        out = (_scatter_add(gather_tokens(xs, keep), dst, gather_tokens(xs, src)) / new_sizes.to(acc)).to(x.dtype)
        if plan.mode == "mlerp":
            norms = x.norm(dim=-1, keepdim=True)  # (B, N, 1)
            idx = dst.unsqueeze(-1)
            max_norm = _group_max(gather_tokens(norms, keep), dst, gather_tokens(norms, src))
            touched = torch.zeros_like(max_norm).scatter_add(
                1, idx, torch.ones_like(idx, dtype=max_norm.dtype)
            )
            out = torch.where(touched > 0, mlerp(out, max_norm), out)

    new_pos = None
    if positions is not None and anchor:  # every group sits where its kept token was
        new_pos = gather_tokens(positions, keep)
    elif positions is not None:  # size-weighted centroid of every group
        ps = positions * s
        new_pos = _scatter_add(gather_tokens(ps, keep), dst, gather_tokens(ps, src))
        new_pos = new_pos / _scatter_add(gather_tokens(s, keep), dst, s_src)
    new_source = None
    if source is not None:
        new_source = _scatter_add(gather_tokens(source, keep), dst, gather_tokens(source, src)).clamp_max(1.0)
    return out, new_sizes, new_pos, new_source
