"""searcher: find the fastest accurate way to run a Vision Transformer.

Optuna studies over token-reduction schedules (ToMe, ToFu, PiToMe, RAPID, top-k, DiffRate) and AutoFormer
architectures, with fvcore-convention FLOPs and measured throughput as constraints.
"""

from importlib.metadata import PackageNotFoundError, version

from .errors import CheckpointError, ConfigError, DataError, SearcherError, StorageError

try:
    __version__ = version("searcher")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"

__all__ = ["__version__", "SearcherError", "ConfigError", "DataError", "CheckpointError", "StorageError"]
