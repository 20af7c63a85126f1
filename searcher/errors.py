"""One exception family for user mistakes.

Every error a user can cause (a malformed budget, a corrupt data file, a config for another model) raises a
subclass of :class:`SearcherError` whose message says what is wrong and what to do. The CLI prints it as a single
``error: …`` line and exits with code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["SearcherError", "ConfigError", "DataError", "CheckpointError", "StorageError", "WorkerError"]


class SearcherError(Exception):
    """Base class: a user-facing error whose message names the problem and the fix."""


class ConfigError(SearcherError, ValueError):
    """A malformed value, schedule, space, study spec or exported config."""


class DataError(SearcherError):
    """Missing, corrupt or inconsistent data files."""


class CheckpointError(SearcherError):
    """Weights that cannot be loaded: corrupt, truncated, of another model, or failing their checksum."""


class StorageError(SearcherError):
    """An Optuna storage that cannot be opened, or a study that is not in it."""


class WorkerError(SearcherError):
    """A local worker process that died (killed, out of memory) before the study was done: the same command resumes
    it."""
