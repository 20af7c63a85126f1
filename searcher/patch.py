"""``apply(model, schedule)`` / ``remove(model)``: patch token reduction into a model through its adapter.

One registry of model adapters. Each adapter knows one model family (timm ``VisionTransformer`` in
:mod:`searcher.models.timm_vit`; the AutoFormer supernet registers its own), patches it in place by swapping
in subclasses that delegate to the model's own submodules, and shares one
:class:`~searcher.reduce.state.TokenState` between the model and its blocks. Unknown model types raise
:class:`~searcher.errors.ConfigError` listing the known adapters.
"""

from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from torch import nn

from .errors import ConfigError
from .reduce.state import TokenState
from .schedule import Schedule

__all__ = [
    "Adapter",
    "ADAPTERS",
    "register_adapter",
    "find_adapter",
    "apply",
    "remove",
    "is_patched",
    "token_state",
    "as_schedule",
]

logger = logging.getLogger(__name__)

_BUILTIN_ADAPTER_MODULES = ("searcher.models.timm_vit", "searcher.models.autoformer")


class Adapter(ABC):
    """Patches one model family. ``apply`` must be idempotent and ``remove`` must restore the original."""

    name: str = "adapter"

    @abstractmethod
    def matches(self, model: nn.Module) -> bool:
        """Whether this adapter handles ``model`` (patched or not)."""

    @abstractmethod
    def apply(self, model: nn.Module, schedule: Schedule, **options: Any) -> nn.Module:
        """Patch ``model`` in place (or re-configure it when already patched) and return it."""

    @abstractmethod
    def remove(self, model: nn.Module) -> nn.Module:
        """Restore the original, unpatched ``model`` in place (a no-op when not patched) and return it."""

    @abstractmethod
    def state(self, model: nn.Module) -> TokenState | None:
        """The model's :class:`TokenState`, or None when not patched."""


ADAPTERS: dict[str, Adapter] = {}


def register_adapter(adapter: Adapter) -> Adapter:
    """Add an adapter to the registry (replacing one of the same name); returns it."""
    ADAPTERS[adapter.name] = adapter
    return adapter


def _load_builtin_adapters() -> None:
    for module in _BUILTIN_ADAPTER_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:  # an optional adapter that is not there (yet)
            if e.name != module:
                raise


def find_adapter(model: nn.Module) -> Adapter:
    """The adapter for ``model``; :class:`ConfigError` naming the known ones when there is none."""
    _load_builtin_adapters()
    for adapter in ADAPTERS.values():
        if adapter.matches(model):
            return adapter
    raise ConfigError(
        f"no token-reduction adapter for a {type(model).__module__}.{type(model).__name__}; "
        f"known adapters: {sorted(ADAPTERS)} (a timm VisionTransformer, or an adapter registered with "
        "searcher.patch.register_adapter)"
    )


def as_schedule(schedule: Schedule | Mapping[str, Any]) -> Schedule:
    """Accept a :class:`Schedule` or its JSON dict."""
    if isinstance(schedule, Schedule):
        return schedule
    if isinstance(schedule, Mapping):
        return Schedule.from_dict(schedule)
    raise ConfigError(f"expected a Schedule or its JSON dict, got {type(schedule).__name__}")


def apply(model: nn.Module, schedule: Schedule | Mapping[str, Any], **options: Any) -> nn.Module:
    """Patch ``model`` in place to reduce tokens as ``schedule`` says; idempotent. Returns ``model``.

    Options (timm adapter): ``trace_source=True`` keeps the (B, N, N0) source map in ``token_state(model)``.
    """
    return find_adapter(model).apply(model, as_schedule(schedule), **options)


def remove(model: nn.Module) -> nn.Module:
    """Undo :func:`apply` in place; the model computes exactly what it did before. Returns ``model``."""
    return find_adapter(model).remove(model)


def token_state(model: nn.Module) -> TokenState:
    """The patched model's per-forward :class:`TokenState` (sizes, positions, source map, history): those of the
    last forward in the calling thread (each thread that runs the model has its own)."""
    state = find_adapter(model).state(model)
    if state is None:
        raise ConfigError("this model is not patched; call searcher.apply(model, schedule) first")
    return state


def is_patched(model: nn.Module) -> bool:
    """Whether :func:`apply` has patched ``model``."""
    try:
        return find_adapter(model).state(model) is not None
    except ConfigError:
        return False
