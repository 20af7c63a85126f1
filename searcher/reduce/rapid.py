"""RAPID (Choi & Jang): redundancy-similarity pruning, then importance-similarity merging.

No official code; this is the reading of the paper's prose in REDUCERS.md. Both steps use ToMe's split and
cosine scores ``S`` of the keys.

- ``rapid_prune`` (blocks before the switch): ``red_i = Σ_j max(0, S_ij − τ)``; the ``r`` A tokens with the
  largest redundancy are dropped. When fewer than ``r`` have ``red_i > 0`` the rest are ranked by
  ``max_j S_ij − 1`` (≤ 0, so always below any positive redundancy: ToMe's nearest-neighbour similarity).
- ``rapid_merge`` (from the switch on): CLS attention ``a``; ``θ`` = the k-th largest ``a`` over patch tokens,
  ``k = ceil(ρ·T)``, per image; ``Ŝ_ij = S_ij − λ(a_i − θ)``; each A token's destination is ``argmax_j Ŝ_ij``
  (= ``argmax_j S_ij``); the ``r`` A tokens with the largest ``Ŝ_{i j*}`` merge, with MLERP (default, as the
  paper cites ToFu) or the size-weighted average (``merge="wavg"``).
"""

from __future__ import annotations

import logging
import math

import torch
from torch import Tensor

from .base import ReduceInput, capped_r
from .matching import bipartite_plan, bipartite_scores
from .merge import Plan

__all__ = ["rapid_prune", "rapid_merge", "redundancy_scores", "importance_scores"]

logger = logging.getLogger(__name__)


def redundancy_scores(scores: Tensor, tau: float) -> Tensor:
    """Ranking of A tokens for pruning from cosine scores (B, Na, Nb) (``-inf`` where protected) → (B, Na).

    ``red_i = Σ_j max(0, S_ij − τ)`` where positive, else ``max_j S_ij − 1``; protected rows stay ``-inf``.
    """
    red = (scores - tau).clamp_min(0).sum(dim=-1)  # (B, Na); -inf entries contribute 0
    fallback = scores.max(dim=-1).values - 1.0  # (B, Na); -inf for protected rows
    rank = torch.where(red > 0, red, fallback)
    return torch.where(torch.isinf(fallback), fallback, rank)


def importance_scores(
    scores: Tensor, attn: Tensor, rho: float, lam: float, num_prefix: int
) -> tuple[Tensor, Tensor]:
    """(``Ŝ_{i j*}`` (B, Na), ``j*`` (B, Na)) from cosine scores (B, Na, Nb) and the CLS row ``attn`` (B,
    N)."""
    patches = attn[:, num_prefix:]  # (B, T)
    k = max(1, math.ceil(rho * patches.shape[1]))
    theta = patches.topk(k, dim=-1).values[:, -1:]  # (B, 1): k-th largest
    a_src = attn[:, ::2]  # (B, Na): attention of every A token
    node_max, node_idx = scores.max(dim=-1)  # (B, Na); the offset does not depend on j
    return node_max - lam * (a_src - theta), node_idx  # protected rows stay -inf


def rapid_prune(inp: ReduceInput, r: int, tau: float = 0.7) -> Plan | None:
    """Drop the ``r`` most redundant A tokens (τ-margin sum of their similarities to B)."""
    n = inp.x.shape[1]
    r = capped_r(r, n, inp.num_prefix)
    if r == 0:
        return None
    rank = redundancy_scores(bipartite_scores(inp.metric, inp.num_prefix), tau)
    return bipartite_plan(rank, None, r, n, inp.num_prefix)


def rapid_merge(
    inp: ReduceInput, r: int, rho: float = 0.2, lam: float = 50.0, merge: str = "mlerp", **params: float
) -> Plan | None:
    """Merge the ``r`` A tokens that are most similar to B *and* least important to CLS (``Ŝ``)."""
    lam = float(params.pop("lambda", lam))  # the schedule spells it "lambda"
    if params:
        raise ValueError(f"rapid_merge got unknown parameter(s) {sorted(params)}")
    if merge not in ("mlerp", "wavg"):
        raise ValueError(f"rapid_merge merge must be 'mlerp' or 'wavg', got {merge=}")
    n = inp.x.shape[1]
    r = capped_r(r, n, inp.num_prefix)
    if r == 0:
        return None
    scores = bipartite_scores(inp.metric, inp.num_prefix)
    rank, node_idx = importance_scores(scores, inp.cls_attention("rapid-merge"), rho, lam, inp.num_prefix)
    return bipartite_plan(rank, node_idx, r, n, inp.num_prefix, mode=merge)
