"""ToMe: bipartite soft matching (Bolya et al., ICLR'23, sec. 3; official facebookresearch/ToMe ``merge.py``).

Split the sequence into alternating sets A and B, give every A token its most similar B token (cosine of the
keys averaged over heads), and merge the ``r`` A tokens with the most similar partners into them,
size-weighted.
"""

from __future__ import annotations

import logging

from .base import ReduceInput, capped_r
from .matching import bipartite_plan, bipartite_scores
from .merge import Plan

__all__ = ["tome"]

logger = logging.getLogger(__name__)


def tome(inp: ReduceInput, r: int) -> Plan | None:
    """Merge the ``r`` best-matched A tokens into their B partners (size-weighted average)."""
    n = inp.x.shape[1]
    r = capped_r(r, n, inp.num_prefix)
    if r == 0:
        return None
    scores = bipartite_scores(inp.metric, inp.num_prefix)  # (B, Na, Nb)
    node_max, node_idx = scores.max(dim=-1)  # (B, Na)
    return bipartite_plan(node_max, node_idx, r, n, inp.num_prefix, mode="wavg")
