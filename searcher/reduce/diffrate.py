"""DiffRate's inference-time compression (Chen et al., ICCV'23; official OpenGVLab/DiffRate
``patch/deit.py``).

Per block: sort patch tokens by CLS attention (descending), keep the first ``prune_kept`` tokens (prefix
included), then merge every token ranked beyond ``merge_kept`` into its most similar kept token — cosine of
the hidden states, unweighted mean (``scatter_reduce('mean')`` in the official code). Tokens entering the MLP:
``min(N, prune_kept, merge_kept)``. Sizes are summed (``sizes="sum"``, default) or, as the official code does,
with every merged token's size scaled by its similarity (``sizes="similarity"``; can make sizes non-integer;
a similarity below 0 counts as 0, so that sizes stay positive for proportional attention's ``log s``).
Prefix tokens never receive merges: when only they are kept, the rest is pruned.
A block that keeps everything is the identity (the official code still re-sorts; order does not change
logits).
"""

from __future__ import annotations

import logging
import math

import torch

from .base import ReduceInput
from .matching import full_precision, normalize
from .merge import Plan

__all__ = ["diffrate"]

logger = logging.getLogger(__name__)


def diffrate(
    inp: ReduceInput, r: int = 0, *, prune_kept: int, merge_kept: int, sizes: str = "sum"
) -> Plan | None:
    """Prune to ``prune_kept`` by CLS attention, then merge down to ``merge_kept`` by hidden-state
    similarity."""
    if r:
        raise ValueError(f"diffrate takes prune_kept/merge_kept, not r; got {r=}")
    if sizes not in ("sum", "similarity"):
        raise ValueError(f"diffrate sizes must be 'sum' or 'similarity', got {sizes=}")
    n, p = inp.x.shape[1], inp.num_prefix
    mid = min(n, prune_kept)
    out = min(mid, merge_kept)
    if out < p or min(prune_kept, merge_kept) < 1:
        raise ValueError(f"diffrate must keep the {p} prefix tokens, got {prune_kept=}, {merge_kept=}")
    if out == n:
        return None
    attn = inp.cls_attention("diffrate")[:, p:]  # (B, T)
    order = attn.argsort(dim=-1, descending=True) + p  # (B, T) input indices, most attended first
    batch = attn.shape[0]
    prefix = torch.arange(p, device=attn.device).expand(batch, -1)
    ranked = torch.cat([prefix, order], dim=1)  # (B, N)
    keep = ranked[:, :out]
    if out == mid or out == p:  # pure prune (with only prefix tokens left there is no destination)
        return Plan(keep=keep)
    src = ranked[:, out:mid]  # (B, mid - out)
    m = normalize(full_precision(inp.x.detach()))
    m_keep = m.gather(1, keep.unsqueeze(-1).expand(-1, -1, m.shape[-1]))  # (B, out, C)
    m_src = m.gather(1, src.unsqueeze(-1).expand(-1, -1, m.shape[-1]))  # (B, R, C)
    sim = m_src @ m_keep.transpose(-1, -2)  # (B, R, out)
    if p:
        sim[:, :, :p] = -math.inf
    node_max, dst = sim.max(dim=-1)  # (B, R)
    scale = node_max.clamp(min=0.0) if sizes == "similarity" else None
    return Plan(keep=keep, src=src, dst=dst, mode="avg", size_scale=scale)
