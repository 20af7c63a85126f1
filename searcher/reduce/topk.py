"""EViT-style top-k pruning by CLS attention (Liang et al., ICLR'22, sec. 3).

Keep the patch tokens with the highest CLS attention (in that order, as the official ``torch.topk``) and,
with ``fuse=True`` (default, as EViT), fuse the others into one new token ``Σ_{dropped} a_i x_i``
(unnormalised, as in the paper) appended at the end. ``r`` is the net number of tokens removed, so with
``fuse`` ``r + 1`` tokens are dropped and one is added. The fused token gets size 1 (EViT has no sizes), so
sizes stay all ones.
"""

from __future__ import annotations

import logging

import torch

from .base import ReduceInput, capped_r
from .merge import Plan

__all__ = ["topk_prune"]

logger = logging.getLogger(__name__)


def topk_prune(inp: ReduceInput, r: int, fuse: bool = True) -> Plan | None:
    """Keep the patch tokens the CLS token attends to most; optionally fuse the rest into one token."""
    n, p = inp.x.shape[1], inp.num_prefix
    r = capped_r(r, n, p)
    if r == 0:
        return None
    attn = inp.cls_attention("topk-prune")[:, p:]  # (B, T)
    n_drop = r + 1 if fuse else r
    order = attn.argsort(dim=-1, descending=True)  # (B, T)
    batch = attn.shape[0]
    prefix = torch.arange(p, device=attn.device).expand(batch, -1)
    keep = torch.cat([prefix, order[:, : order.shape[1] - n_drop] + p], dim=1)  # (B, N - n_drop)
    if not fuse:
        return Plan(keep=keep)
    dropped = order[:, order.shape[1] - n_drop :]  # (B, r + 1)
    weight = attn.gather(1, dropped)  # (B, r + 1)
    dst = torch.full_like(dropped, keep.shape[1])  # the one new slot
    return Plan(keep=keep, src=dropped + p, dst=dst, mode="sum", weight=weight, n_new=1)
