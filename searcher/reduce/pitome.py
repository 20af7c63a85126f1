"""PiToMe: spectrum-preserving token merging (Tran et al., NeurIPS'24; official hchautran/PiToMe
``merge.py``).

Energy of each patch token over the cosine graph of the keys, ``E_i = (1/T) Σ_j ELU(W_ij − margin)`` with α =
1 (eq. 4; the official code subtracts the margin in the positive branch too, and so do we). Tokens are sorted
by energy, descending; the ``2r`` highest-energy tokens form the merge set, split into A (even positions) and
B (odd positions); every A token merges (size-weighted) into its most similar B token; the rest are kept
("protected"). Output order as in the official code: ``[prefix, kept tokens by energy, B tokens]``.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import ReduceInput, capped_r
from .matching import full_precision, normalize
from .merge import Plan

__all__ = ["pitome", "pitome_energy"]

logger = logging.getLogger(__name__)


def pitome_energy(metric: Tensor, margin: float, alpha: float = 1.0) -> tuple[Tensor, Tensor]:
    """(energy (B, T), cosine graph W (B, T, T)) of patch-token metrics (B, T, d)."""
    m = normalize(full_precision(metric))
    w = m @ m.transpose(-1, -2)  # (B, T, T), self included
    return F.elu(w - margin, alpha=alpha).mean(dim=-1), w


def pitome(inp: ReduceInput, r: int, margin: float = 0.5) -> Plan | None:
    """Merge ``r`` of the ``2r`` highest-energy patch tokens into the other ``r`` (PiToMe, protected
    variant)."""
    n, p = inp.x.shape[1], inp.num_prefix
    r = capped_r(r, n, p)
    if r == 0:
        return None
    energy, w = pitome_energy(inp.metric[:, p:], margin)  # (B, T), (B, T, T)
    order = energy.argsort(dim=-1, descending=True)  # (B, T)
    a_idx, b_idx = order[:, : 2 * r : 2], order[:, 1 : 2 * r : 2]  # (B, r) each, patch indices
    kept = order[:, 2 * r :]  # (B, T - 2r)
    batch = w.shape[0]
    ab = w.gather(1, a_idx.unsqueeze(-1).expand(-1, -1, w.shape[2]))  # (B, r, T)
    ab = ab.gather(2, b_idx.unsqueeze(1).expand(-1, r, -1))  # (B, r, r)
    dst_b = ab.argmax(dim=-1)  # (B, r)
    prefix = torch.arange(p, device=w.device).expand(batch, -1)
    keep = torch.cat([prefix, kept + p, b_idx + p], dim=1)  # (B, N - r)
    dst = p + kept.shape[1] + dst_b
    return Plan(keep=keep, src=a_idx + p, dst=dst, mode="wavg")
