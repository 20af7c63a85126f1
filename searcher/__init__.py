"""searcher: find the fastest accurate way to run a Vision Transformer.

Optuna studies over token-reduction schedules (ToMe, ToFu, PiToMe, RAPID, top-k, DiffRate) and AutoFormer
architectures, with fvcore-convention FLOPs and measured throughput as constraints.

The public names (``Schedule``, ``apply``, ``remove``, ``flops``, ``load_config``) are imported lazily, so the
command line starts without loading torch.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from .errors import CheckpointError, ConfigError, DataError, SearcherError, StorageError

try:
    __version__ = version("searcher")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"

_LAZY = {
    "Schedule": ".schedule",
    "tokens_per_block": ".schedule",
    "apply": ".patch",
    "remove": ".patch",
    "token_state": ".patch",
    "flops": ".cost.flops",
    "load_config": ".deploy",
}

__all__ = [
    "__version__",
    "SearcherError",
    "ConfigError",
    "DataError",
    "CheckpointError",
    "StorageError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'searcher' has no attribute {name!r}")
