"""The one registry of reducers: schedule op name → reducer function (see :mod:`searcher.reduce.base`)."""

from __future__ import annotations

import logging

from ..errors import ConfigError
from .base import Reducer
from .diffrate import diffrate
from .pitome import pitome
from .rapid import rapid_merge, rapid_prune
from .tofu import tofu_merge, tofu_prune
from .tome import tome
from .topk import topk_prune

__all__ = ["REDUCERS", "get_reducer", "NEEDS_CLS_ATTENTION"]

logger = logging.getLogger(__name__)

REDUCERS: dict[str, Reducer] = {
    "tome": tome,
    "tofu-prune": tofu_prune,
    "tofu-merge": tofu_merge,
    "pitome": pitome,
    "rapid-prune": rapid_prune,
    "rapid-merge": rapid_merge,
    "topk-prune": topk_prune,
    "diffrate": diffrate,
}

# Ops that read the CLS attention row (the model must be able to compute it, and have a class token).
NEEDS_CLS_ATTENTION = frozenset({"rapid-merge", "topk-prune", "diffrate"})


def get_reducer(op: str) -> Reducer:
    """The reducer of a schedule op; unknown names raise :class:`ConfigError` listing the known ones."""
    try:
        return REDUCERS[op]
    except KeyError:
        raise ConfigError(f"unknown reducer op {op!r}; known ops: {sorted(REDUCERS)} (and 'none')") from None
