"""Token reducers: pure tensor functions, one file per method, shared matching/merge ops, one registry.

- :mod:`.merge` — :class:`Plan` (a reduction as index tensors) and :func:`apply_plan`;
- :mod:`.matching` — ToMe's bipartite split, cosine scores, the O(N·d) CLS attention row;
- :mod:`.tome`, :mod:`.tofu`, :mod:`.pitome`, :mod:`.rapid`, :mod:`.topk`, :mod:`.diffrate` — the methods;
- :mod:`.registry` — ``REDUCERS`` (schedule op → function);
- :mod:`.state` — :class:`TokenState`, the per-forward state and the entry point model blocks call.
"""

from .base import ReduceInput, Reducer, capped_r
from .matching import bipartite_plan, bipartite_scores, cls_attention
from .merge import Plan, apply_plan, gather_tokens, mlerp
from .registry import NEEDS_CLS_ATTENTION, REDUCERS, get_reducer
from .state import TokenState, grid_positions, index_positions

__all__ = [
    "REDUCERS",
    "NEEDS_CLS_ATTENTION",
    "get_reducer",
    "Reducer",
    "ReduceInput",
    "Plan",
    "apply_plan",
    "gather_tokens",
    "mlerp",
    "capped_r",
    "bipartite_scores",
    "bipartite_plan",
    "cls_attention",
    "TokenState",
    "grid_positions",
    "index_positions",
]
