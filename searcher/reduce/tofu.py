"""ToFu: token fusion (Kim et al., WACV'24). No official code; this is the reading in REDUCERS.md.

Same matching as ToMe. Early blocks *prune* (``tofu_prune``: the ``r`` matched A tokens are dropped, their
partners unchanged); later blocks *merge with MLERP* (``tofu_merge``): the size-weighted group mean rescaled
to the largest norm in the group, ``x' = x̄ · max_g ‖x_g‖ / ‖x̄‖`` (eq. 5). The switch between the two is a
schedule parameter (:meth:`searcher.Schedule.recipe`).
"""

from __future__ import annotations

import logging

from .base import ReduceInput, capped_r
from .matching import bipartite_plan, bipartite_scores
from .merge import Plan

__all__ = ["tofu_prune", "tofu_merge"]

logger = logging.getLogger(__name__)


def _match(inp: ReduceInput, r: int, merge: bool) -> Plan | None:
    n = inp.x.shape[1]
    r = capped_r(r, n, inp.num_prefix)
    if r == 0:
        return None
    node_max, node_idx = bipartite_scores(inp.metric, inp.num_prefix).max(dim=-1)  # (B, Na)
    return bipartite_plan(node_max, node_idx if merge else None, r, n, inp.num_prefix, mode="mlerp")


def tofu_prune(inp: ReduceInput, r: int) -> Plan | None:
    """Drop the ``r`` A tokens that ToMe would merge (their best B partner already represents them)."""
    return _match(inp, r, merge=False)


def tofu_merge(inp: ReduceInput, r: int) -> Plan | None:
    """ToMe's matching, merged with MLERP instead of the size-weighted average."""
    return _match(inp, r, merge=True)
