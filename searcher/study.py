"""``searcher optimize``: a thin facade over Optuna studies of token-reduction schedules and AutoFormer subnets.

One trial: the space suggests a :class:`~searcher.space.Candidate`; its analytic FLOPs are checked against the
budget before any forward pass (``trial.set_constraint``, the Optuna 5 API); the patched model is evaluated on the
search split in chunks, and stopped early (``TrialPruned``) once its accuracy's upper confidence bound cannot reach
the current Pareto front at its FLOPs. Throughput is measured in the trial when it is an objective, or a constraint
(``--min-throughput``) and the candidate could still be Pareto-optimal (the front does not already dominate it);
otherwise no decision depends on it, and only the final Pareto set is timed, after the search. Either way it is timed
alone on the device: evaluation holds a per-device lock shared, batch by batch, timing holds it exclusively
(:class:`~searcher.cost.throughput.DeviceLock`), so other workers of this host pause while one times. The
candidate, FLOPs, throughput and accuracy are stored as trial user attributes (the Pareto set's later figures as
study attributes, ``test:<trial>`` and ``throughput:<trial>``), so export and report need nothing but the storage.

Storage: SQLite at ``<out>/study.db`` by default (one worker; a lock file keeps a second ``optimize`` away), a
journal file (``journal:PATH``) or PostgreSQL/MySQL URLs for many workers. Re-running the same command resumes the
study until ``trials`` candidates have been evaluated (finished trials, complete or pruned; a trial that draws a
candidate already evaluated reuses its result and does not count, up to three draws per trial). The trials of a
killed worker are failed (the reason in their ``fail_reason`` attribute) and retried, by every worker before each
trial and when a study is resumed: RDB storages by their heartbeats (also a trial whose worker died before its first
heartbeat), the journal file by the owner every trial records (a dead process on this host; see
:class:`_JournalStorage`).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import math
import os
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, NoReturn, cast

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import TrialState

from ._sigint import ECHO_S, in_storage, on_sigint, sigint_held
from .cost.throughput import Throughput, device_lock, measure
from .data import Split, check_data, data_config_for, held_alone, load_splits, resolve_data_spec
from .errors import ConfigError, DataError, SearcherError, StorageError, WorkerError
from .evaluate import NumericalError, evaluate, evaluate_chunks
from .schedule import Schedule, check_fits
from .space import Candidate, SearchSpace, find_spec, load_yaml, yaml_number_hint
from .units import parse_budget, parse_rate, written_as

__all__ = [
    "StudySpec", "open_storage", "optimize", "load_study", "pareto_trials", "candidate_of", "test_result",
    "throughput_of",
]

log = logging.getLogger(__name__)
OBJECTIVES = {"top1": "maximize", "gflops": "minimize", "throughput": "maximize"}
SAMPLERS = ("tpe", "nsga2", "random", "gp")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # trials that count: stopped early and repeats end as pruned


# --------------------------------------------------------------------------------------------------- spec
@dataclass
class StudySpec:
    """A study: model, data, space, budget and constraints, objectives, sampler, storage, trials, seed."""

    name: str
    model: str  # timm name, fashion-vit / fashion-autoformer, autoformer-t|s|b[-supernet]
    # a space YAML (a relative path is the working directory's, else the spec's folder's, as data and checkpoint
    # paths are), a shipped space's name, or the space inline
    space: str | dict[str, Any]
    checkpoint: str | None = None  # local path or URL (timm or AutoFormer weights)
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # timm create_model arguments (img_size, …)
    data: dict[str, Any] = field(default_factory=lambda: {"kind": "fashion-mnist"})
    budget: str = "50%"  # GFLOPs per image, absolute or relative to the unreduced model
    min_throughput: str | None = None  # e.g. "1500img/s": a constraint
    objectives: list[str] = field(default_factory=lambda: ["top1", "gflops"])
    trials: int = 60  # candidates to evaluate (finished trials that are not repeats of an earlier candidate)
    timeout: float | None = None  # seconds for this invocation
    sampler: str = "tpe"
    seed: int = 0
    storage: str | None = None  # default: sqlite at <out>/study.db
    workers: int = 1
    batch_size: int = 256  # evaluation batch
    search_images: int | None = None  # evaluate on the first N images of the search split (None: all)
    test_images: int | None = None
    chunk: int = 500  # early stopping: evaluate in chunks of this many images
    early_stop: bool = True
    throughput_batch: int = 256
    throughput_repeats: int = 5
    baselines: bool = True
    diffrate_baseline: dict[str, list[int]] | None = None  # published {prune_kept, merge_kept} to enqueue
    base_dir: str = "."  # where relative paths in the spec resolve (the spec file's directory)

    @classmethod
    def from_yaml(cls, path: str | Path) -> StudySpec:
        """A study spec file, or the name of a shipped one (``fashion-vit``: ``searcher/studies/fashion-vit.yaml``)."""
        if not isinstance(path, str | Path):
            raise ConfigError(f"give a study spec's path or a shipped spec's name (fashion-vit), got {path!r}")
        path = find_spec(path, "studies")
        d = load_yaml(path, "study spec")
        if not isinstance(d, dict):
            raise ConfigError(f"study spec {path} must be a mapping of options (model:, space:, budget:, …), got "
                              f"{'an empty file' if d is None else type(d).__name__}")
        d.setdefault("name", path.stem)
        d.setdefault("base_dir", str(path.parent))
        if isinstance(d.get("storage"), str):  # a relative file, as the spec's other paths: here, else beside it
            d["storage"] = _storage_beside(d["storage"], path.parent)
        try:
            return cls.from_dict(d)
        except ConfigError as e:
            raise ConfigError(f"study spec {path}: {e}") from e

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StudySpec:
        known = {f.name: f for f in fields(cls)}
        unknown = set(d) - set(known)
        if unknown:
            raise ConfigError(f"unknown key(s) {sorted(unknown, key=str)}; known keys: {sorted(known)}")
        for req in ("name", "model", "space"):
            if req not in d:
                raise ConfigError(f"missing '{req}'")
        spec = cls(**d)
        spec.validate()
        return spec

    def override(self, **kw: Any) -> StudySpec:
        """Apply CLI flags (None means "not given")."""
        unknown = sorted(set(kw) - {f.name for f in fields(self)})
        if unknown:
            raise ConfigError(f"unknown key(s) {unknown}; known keys: {sorted(f.name for f in fields(self))}")
        if isinstance(kw.get("objectives"), str):  # as --objectives takes them
            kw["objectives"] = kw["objectives"].split(",")
        if isinstance(kw.get("objectives"), tuple):
            kw["objectives"] = list(kw["objectives"])
        spec = replace(self, **{k: v for k, v in kw.items() if v is not None})
        spec.validate()
        return spec

    def validate(self) -> None:
        def typed(name: str, kinds: type | tuple[type, ...], allow_none: bool = False) -> None:
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if (
                isinstance(v, bool)
                and bool not in (kinds if isinstance(kinds, tuple) else (kinds,))
                or not isinstance(v, kinds)
            ):
                words = {str: "a string", dict: "a mapping", int: "an integer", float: "a number",
                         bool: "true or false", list: "a list"}
                wanted = " or ".join(dict.fromkeys(words.get(k, k.__name__) for k in
                                                   (kinds if isinstance(kinds, tuple) else (kinds,))))
                raise ConfigError(f"'{name}' must be {wanted}, got {v!r}{yaml_number_hint(v)}")

        for name in ("name", "model"):
            typed(name, str)
        typed("space", (str, dict))
        typed("base_dir", str)
        typed("data", dict)
        typed("model_kwargs", dict)
        typed("trials", int)
        typed("workers", int)
        typed("seed", int)
        typed("batch_size", int)
        typed("chunk", int)
        typed("throughput_batch", int)
        typed("throughput_repeats", int)
        typed("early_stop", bool)
        typed("baselines", bool)
        typed("checkpoint", str, allow_none=True)
        typed("storage", str, allow_none=True)
        typed("timeout", (int, float), allow_none=True)
        typed("search_images", int, allow_none=True)
        typed("test_images", int, allow_none=True)
        for name in ("checkpoint", "storage"):
            if getattr(self, name) is not None and not getattr(self, name).strip():
                raise ConfigError(f"'{name}' is empty; give a {'path or URL' if name == 'checkpoint' else 'URL'}, or "
                                  "leave the key out")
        if isinstance(self.space, str) and not self.space.strip():
            raise ConfigError("'space' is empty; give a search space YAML file or a shipped space's name")
        if isinstance(self.space, dict):  # an inline space: checked here, so its errors name the spec
            try:
                SearchSpace.from_dict(self.space)
            except ConfigError as e:
                raise ConfigError(f"space: {e}") from e
        if isinstance(self.min_throughput, int | float) and not isinstance(self.min_throughput, bool):
            raise ConfigError(f"min_throughput {self.min_throughput!r} needs its unit: write "
                              f"'{self.min_throughput}img/s'")
        if not self.name.strip() or "/" in self.name or self.name.startswith("."):
            raise ConfigError(f"study name {self.name!r} must be a plain name (no '/'), e.g. 'fashion-vit'")
        parse_budget(str(self.budget))
        if self.min_throughput is not None:
            parse_rate(self.min_throughput)
        if self.trials < 1:
            raise ConfigError(f"trials must be at least 1, got {self.trials}")
        if self.workers < 1:
            raise ConfigError(f"workers must be at least 1, got {self.workers}")
        for name in ("batch_size", "chunk", "throughput_batch", "throughput_repeats"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed must be in 0 to 2**32 - 1 (NumPy's range), got {self.seed}")
        if self.timeout is not None and not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise ConfigError(f"timeout must be a positive number of seconds, got {self.timeout}; leave it out to run "
                              "until --trials are done")
        for name in ("search_images", "test_images"):
            if (n := getattr(self, name)) is not None and n < 1:
                raise ConfigError(f"{name} must be at least 1, got {n}; leave it out to use the whole split")
        if (
            not isinstance(self.objectives, list)
            or not self.objectives
            or any(not isinstance(o, str) or o not in OBJECTIVES for o in self.objectives)
            or len(set(self.objectives)) != len(self.objectives)
        ):
            raise ConfigError(f"objectives must be a list of distinct names from {list(OBJECTIVES)}, got "
                              f"{self.objectives!r}")
        if "top1" not in self.objectives:
            raise ConfigError("objectives must include 'top1'")
        if self.diffrate_baseline is not None and (
            not isinstance(self.diffrate_baseline, dict)
            or set(self.diffrate_baseline) != {"prune_kept", "merge_kept"}
            or not all(
                isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
                for v in self.diffrate_baseline.values()
            )
        ):
            raise ConfigError(
                "diffrate_baseline must be {prune_kept: [...], merge_kept: [...]}: the kept-token counts per block "
                f"of a published DiffRate schedule, got {self.diffrate_baseline!r}"
            )
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r}; use one of {list(SAMPLERS)}")
        if self.sampler == "gp":
            try:
                import scipy  # noqa: F401  (Optuna's GPSampler optimises its acquisition function with it)
            except ImportError:
                raise ConfigError(
                    "the gp sampler needs scipy, which is not installed: pip install 'searcher[gp]', "
                    "or use another --sampler"
                ) from None

    def checkpoint_path(self) -> str | None:
        """``checkpoint`` with a relative path resolved (the working directory's, else the spec's folder's) and made
        absolute; a URL as it is."""
        if not self.checkpoint or "://" in self.checkpoint:
            return self.checkpoint
        return _here_or_beside(self.checkpoint, self.base_dir)

    def load_space(self) -> SearchSpace:
        if isinstance(self.space, dict):
            return SearchSpace.from_dict(self.space)
        return SearchSpace.from_yaml(find_spec(self.space, "spaces", base=self.base_dir))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------------------ storage
def _storage_beside(url: str, base: Path) -> str:
    """A spec's ``sqlite:///PATH`` or ``journal:PATH`` with a relative PATH: the working directory's when it exists
    there, else the spec folder's (``base``), made absolute; other URLs as they are."""
    for prefix in ("sqlite:///", "journal:"):
        if url.startswith(prefix):
            rest = url[len(prefix):]
            file, query = rest.split("?", 1) if prefix == "sqlite:///" and "?" in rest else (rest, None)
            if not file or Path(file).expanduser().is_absolute() or file == ":memory:":
                return url
            return prefix + _here_or_beside(file, base) + (f"?{query}" if query is not None else "")
    return url


def _here_or_beside(file: str, base: str | Path) -> str:
    """A spec's path made absolute: a relative one is the working directory's when it exists there, else ``base``'s
    (the spec's folder)."""
    path = Path(file).expanduser()
    if not path.is_absolute() and not path.exists():
        path = Path(base) / path
    return str(path.resolve())


def default_storage(out: Path, workers: int) -> str:
    """SQLite for one worker; a journal file for several local workers (SQLite is not safe for that). A study
    begun in ``study.db`` stays there: several workers on it are refused rather than started on a new study."""
    journal, db = out / "study.journal", out / "study.db"
    if workers > 1 and db.exists() and not journal.exists():
        raise ConfigError(
            f"{out} holds a study in SQLite ({db.name}), which one process at a time can run; resume it without "
            "--workers, or run several workers on a new --out (a journal file), or with --storage postgresql://…"
        )
    if workers > 1 or journal.exists():
        return f"journal:{journal}"
    return f"sqlite:///{db}"


@contextlib.contextmanager
def experimental() -> Iterator[None]:
    """Optuna features searcher uses on purpose (heartbeats and their retry callback, TPE's multivariate, group and
    constant_liar, metric names, fail_stale_trials) warn as experimental: a warning for searcher's maintainers, kept
    from its users (the CLI and the Python API alike)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def open_storage(url: str, write_ahead: bool = False) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url``: ``sqlite:///…``, ``postgresql://…``, ``mysql://…`` or ``journal:PATH``.

    A killed worker's RUNNING trial is failed and retried (at most ``MAX_RETRY`` times): on RDB storages once its
    heartbeat is ``GRACE_S`` old, on the journal file once its owner process is gone (:class:`_JournalStorage`).
    ``write_ahead``: switch an SQLite file to write-ahead logging (:func:`_write_ahead_log`), as ``optimize`` does;
    readers leave the file as it is."""
    try:
        with experimental():
            retry = _Retry(max_retry=MAX_RETRY)
        if url.startswith("journal:"):
            from optuna.storages.journal import JournalFileOpenLock

            path = url[len("journal:") :]
            _check_journal(Path(path))
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            return _JournalStorage(_JournalFile(path, lock_obj=JournalFileOpenLock(path)), retry)
        scheme = url.split(":", 1)[0].split("+", 1)[0]
        if scheme not in ("sqlite", "postgresql", "mysql"):
            raise ConfigError(
                f"unsupported storage URL {_redact(url)!r}; use sqlite:///PATH, postgresql://…, mysql://… or "
                f"journal:PATH{' (postgres:// is written postgresql://)' if scheme == 'postgres' else ''}"
            )
        if scheme == "sqlite" and url.split("?", 1)[0] in ("sqlite://", "sqlite:///", "sqlite:///:memory:"):
            raise ConfigError(f"{url} is an in-memory database, gone when the run ends (and each connection gets "
                              "its own); give a file: sqlite:///PATH")
        if url.startswith("postgresql://") or url.startswith("postgresql+psycopg:"):
            try:
                import psycopg  # noqa: F401  (SQLAlchemy's default driver is psycopg2: either will do)
            except ImportError:
                try:
                    import psycopg2  # noqa: F401
                except ImportError:
                    raise ConfigError("a PostgreSQL storage needs a driver: pip install 'searcher[postgres]' "
                                      "(psycopg)") from None
        engine_kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            engine_kwargs = {"connect_args": {"timeout": 60}}
        else:
            engine_kwargs = {"pool_pre_ping": True}
        for attempt in range(4):
            try:
                with experimental():
                    storage = _RDBStorage(
                        url,
                        engine_kwargs=engine_kwargs,
                        heartbeat_interval=10,
                        grace_period=GRACE_S,
                        heartbeat_stale_trial_callback=retry,
                    )
                break
            except Exception as e:  # workers started at once on a new database race to create Optuna's tables
                racing = "already exists" in str(e) or "duplicate key" in str(e)
                if not racing or attempt == 3:
                    raise
                time.sleep(0.5 * (attempt + 1))
        if write_ahead and url.startswith("sqlite"):
            _write_ahead_log(storage.engine)
        return storage
    except SearcherError:
        raise
    except Exception as e:  # sqlalchemy / driver errors: unreachable server, bad credentials, unwritable file
        from .export import _file_of

        db = _file_of(url) if url.startswith("sqlite") else None
        if db is not None and db.is_file() and not os.access(db.parent, os.W_OK):
            raise StorageError(
                f"cannot open {db}: its folder is read-only, and SQLite needs to write beside the file (a study "
                f"written by optimize is in write-ahead-log mode: {db.name}-shm); copy {db.name} to a writable "
                "folder and pass --storage sqlite:///COPY (sqlite:////tmp/study.db for an absolute path)"
            ) from e
        raise StorageError(
            f"cannot open storage {_redact(url)}: {str(e).splitlines()[0]}; check the URL, that the "
            "server is reachable and that the path is writable"
        ) from e


def _check_journal(path: Path) -> None:
    """An existing file given as a journal must be one: Optuna skips a last line it cannot read (a record cut
    short), so a text file of one line was taken for an empty journal, and cut or appended to."""
    try:
        with open(path, "rb") as f:
            head = f.readline(1 << 20)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return  # a new journal (its folder made, or the error of making it, by open_storage); a folder is refused there
    except OSError as e:
        raise StorageError(f"cannot read the journal {path}: {e.strerror or e}") from e
    if not head.strip(b"\0"):
        return  # empty, or zeros a power cut left
    try:
        record = json.loads(head)
    except ValueError:
        record = None
        start = head.replace(b" ", b"")[:10]
        if not head.endswith(b"\n") and b'{"op_code"'.startswith(start):
            return  # the first record, cut short by a kill: dropped when the journal opens
    if not isinstance(record, dict) or "op_code" not in record:
        raise StorageError(f"{path} is not an Optuna journal (its first line is {head[:40]!r}); give the path of a "
                           "journal, or of a file that does not exist yet")


def _write_ahead_log(engine: Any) -> None:
    """SQLite in write-ahead-log mode with ``synchronous=NORMAL``: a commit appends to ``study.db-wal`` instead of
    syncing a rollback journal and the database, which takes a third off Optuna's storage time per trial (a trial
    writes each parameter and attribute in its own transaction). A killed process loses nothing committed, and
    the file is never left corrupt; a power cut can lose the last commits. SQLite folds the log back into the
    database when the last connection closes; the file stays in WAL mode, which SQLite readers follow (they need
    write access to its folder for the shared-memory file). A file that cannot switch (read-only, or locked by
    another process) keeps its mode."""
    import sqlite3

    from sqlalchemy import event

    def on_connect(conn: Any, _record: Any) -> None:
        cursor = conn.cursor()
        with contextlib.suppress(sqlite3.OperationalError):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # the connection Optuna opened to create the tables: the next one gets the settings


# ------------------------------------------------------------------------------------------- stale trials
GRACE_S = 30  # a RUNNING trial without a sign of life for this long is failed (RDB heartbeat; no owner at all)
MAX_RETRY = 2  # ... and queued again at most this many times
_OWNER = "searcher:owner"  # system attribute: the process that runs a trial (_Owned)


class _Retry(RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a stale trial (a WAITING copy with its parameters and user attributes, and the
    ``failed_trial`` / ``retry_history`` system attributes, at most ``max_retry`` times), without what belonged to
    the dead attempt: its ``fail_reason``, its verdicts on the constraints (the retry measures again; Optuna warns
    of a constraint set twice) and its owner. ``trials``: a study that has as many candidates needs no retry
    but of a published recipe (one queued after it was complete stayed WAITING for good, until 2026-12-07)."""

    trials: int | None = None

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if (self.trials is not None and not trial.user_attrs.get("baseline")
                and _done(_finished(study), self.trials)):
            return
        trial.user_attrs = {k: v for k, v in trial.user_attrs.items()
                            if k not in ("fail_reason", "feasible", "infeasible")}
        trial.system_attrs = {k: v for k, v in trial.system_attrs.items()
                              if k != _OWNER and not k.startswith("constraints:")}
        super().__call__(study, trial)


def _mark_stale(storage: optuna.storages.BaseStorage, reasons: Mapping[int, str]) -> list[int]:
    """Record why each stale trial is about to be failed (``fail_reason``; a finished trial cannot be updated, so
    this comes before Optuna's ``fail_stale_trials`` fails it) and return their ids."""
    for trial_id, why in reasons.items():
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):  # another worker failed it first
            storage.set_trial_user_attr(trial_id, "fail_reason", f"worker died: {why}")
    return list(reasons)


def _older_than_grace(start: Any) -> bool:
    """Whether a trial has been RUNNING for longer than ``GRACE_S`` by its ``datetime_start`` (Optuna's naive local
    time; hosts that share a storage must agree on the time within the grace period)."""
    from datetime import datetime

    return start is not None and (datetime.now() - start).total_seconds() > GRACE_S


class _Owned:
    """A storage whose trials record their owner (host, pid, and when that process started) as the
    ``searcher:owner`` system attribute when they start RUNNING: a trial whose owner ran on this host and is gone is
    stale at once (:func:`_owner_gone`), whatever its heartbeat says."""

    def _own(self, trial_id: int, template_trial: optuna.trial.FrozenTrial | None) -> dict[str, Any] | None:
        """Record this process as the owner of a trial just created, when it is created RUNNING; the owner."""
        if template_trial is not None and template_trial.state != TrialState.RUNNING:
            return None
        owner = _this_process()
        self.set_trial_system_attr(trial_id, _OWNER, owner)  # type: ignore[attr-defined]
        return owner

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        taken = super().set_trial_state_values(trial_id, state, values)  # type: ignore[misc]
        if taken and state == TrialState.RUNNING:  # this process took a WAITING (enqueued or retried) trial
            self._own(trial_id, None)
        return taken


class _RDBStorage(_Owned, optuna.storages.RDBStorage):
    """Optuna's RDB storage, whose stale trials also include RUNNING trials that never recorded a heartbeat, and
    those whose owner on this host is gone (:class:`_Owned`: a ``--workers`` run fails its dead worker's trial as
    the worker ends, not 30 s later, when its heartbeat is stale).

    Optuna skips trials without a heartbeat: a worker killed between ``study.ask()`` (the trial is RUNNING while
    the sampler runs) and its heartbeat thread's first beat left its trial RUNNING for ever. Such a trial is stale
    once it has been RUNNING for longer than the grace period (by its ``datetime_start``): a sampler that takes
    longer than that to suggest a candidate would have its trial failed under it (as a live trial whose heartbeat
    stopped would)."""

    orphans: frozenset[int] = frozenset()  # RUNNING when this process took the study's SQLite lock: a dead run's

    def _create_new_trial(self, study_id: int, template_trial: optuna.trial.FrozenTrial | None = None
                          ) -> optuna.trial.FrozenTrial:  # what create_new_trial and Optuna's cache call
        trial = super()._create_new_trial(study_id, template_trial)
        if (owner := self._own(trial._trial_id, template_trial)) is not None:
            trial.system_attrs[_OWNER] = owner  # the copy Optuna's cache keeps
        return trial

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        reasons = self.stale_reasons(study_id)
        for i in self.orphans:  # once: failed now, and queued again
            reasons.setdefault(i, "its run ended without finishing it (the study's lock was free)")
        self.orphans = frozenset()
        return _mark_stale(self, reasons)

    def stale_reasons(self, study_id: int) -> dict[int, str]:
        """Why each stale RUNNING trial is stale (its heartbeat, or none at all, older than the grace period), by
        trial id; nothing is changed."""
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        reasons = {i: f"no heartbeat for more than {GRACE_S} s" for i in super()._get_stale_trial_ids(study_id)}
        with _create_scoped_session(self.scoped_session) as session:
            beating = {
                trial_id
                for (trial_id,) in session.query(models.TrialHeartbeatModel.trial_id)
                .join(models.TrialModel)
                .filter(models.TrialModel.study_id == study_id)
            }
        for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            owner = t.system_attrs.get(_OWNER) or {}
            if _booted_here(owner) and (why := _owner_gone(owner)) is not None:
                reasons[t._trial_id] = why
            elif t._trial_id not in reasons and t._trial_id not in beating and _older_than_grace(t.datetime_start):
                reasons[t._trial_id] = f"no heartbeat at all, RUNNING since {t.datetime_start:%Y-%m-%d %H:%M:%S}"
        return reasons


class _JournalFile(optuna.storages.journal.JournalFileBackend):
    """Optuna's journal file, where a record cut off by a crash mid-write (the file does not end in a newline) is
    dropped before the next one is appended, under the file's lock. Optuna's reader skips such a last line, but
    its writer appended the next record to it, and the file could not be read again (a JSONDecodeError for ever)."""

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        from optuna.storages.journal._file import get_lock_file

        with get_lock_file(self._lock):
            _drop_cut_record(Path(self._file_path))
            text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
            with open(self._file_path, "ab") as f:
                f.write(text.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())


def _drop_cut_record(path: Path, chunk: int = 1 << 16) -> None:
    """Truncate ``path`` after its last newline when it does not end in one (a record cut off mid-write)."""
    try:
        f = open(path, "rb+")
    except FileNotFoundError:
        return
    with f:
        end = f.seek(0, os.SEEK_END)
        if end == 0:
            return
        f.seek(end - 1)
        if f.read(1) == b"\n":
            return
        pos = end
        while pos > 0:  # back to the last newline
            start = max(0, pos - chunk)
            f.seek(start)
            block = f.read(pos - start)
            i = block.rfind(b"\n")
            if i >= 0:
                pos = start + i + 1
                break
            pos = start
        log.warning(f"{path}: its last record was cut off ({end - pos} bytes, a crash while writing it); dropped it")
        f.truncate(pos)


class _JournalStorage(_Owned, optuna.storages.JournalStorage, BaseHeartbeat):
    """The journal file, with the dead-worker check that Optuna 5 gives only RDB storages (it has no heartbeat).

    Every trial records its owner (host, pid, and when that process started) as the ``searcher:owner`` system
    attribute when it starts RUNNING. A RUNNING trial is stale when its owner ran on this host (same host name,
    machine id and pid namespace) and is gone: no such pid, a zombie, or the pid now belongs to a process that
    started later. Trials owned by another host cannot be judged from here and stay RUNNING until a worker on
    their host checks (use PostgreSQL, whose heartbeats work across hosts, for workers on several machines). A
    RUNNING trial with no owner (its worker died between starting it and recording itself) is stale once it is
    older than the grace period. Optuna's optimize loop runs the check before every trial (this storage counts as
    heartbeat-enabled; its "heartbeat" records nothing), and the retry callback queues the trial again."""

    def __init__(self, backend: Any, retry: _Retry) -> None:
        super().__init__(backend)
        self._retry = retry

    def create_new_trial(self, study_id: int, template_trial: optuna.trial.FrozenTrial | None = None) -> int:
        trial_id = super().create_new_trial(study_id, template_trial)
        self._own(trial_id, template_trial)
        return trial_id

    def record_heartbeat(self, trial_id: int) -> None:
        pass  # the owner, recorded when the trial started, is what tells whether its worker lives

    def get_heartbeat_interval(self) -> int:
        return 3600  # Optuna's heartbeat thread calls record_heartbeat (a no-op) this often

    def get_heartbeat_stale_trial_callback(self) -> _Retry:
        return self._retry

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        reasons = {}
        for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            owner = t.system_attrs.get(_OWNER)
            if owner is None:
                if _older_than_grace(t.datetime_start):
                    reasons[t._trial_id] = f"no owner recorded, RUNNING since {t.datetime_start:%Y-%m-%d %H:%M:%S}"
            elif (why := _owner_gone(owner)) is not None:
                reasons[t._trial_id] = why
        return _mark_stale(self, reasons)


@functools.cache
def _host_id() -> str:
    """This host as the owner check sees it: its name, machine id and pid namespace (containers on one machine
    with one host name do not share pids)."""
    import socket

    parts = [socket.gethostname()]
    for read in (lambda: Path("/etc/machine-id").read_text().strip(), lambda: os.readlink("/proc/self/ns/pid")):
        try:
            parts.append(read())
        except OSError:
            parts.append("")
    return "|".join(parts)


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started, as ``<boot id>:<clock ticks after boot>`` (Linux ``/proc``); None where that
    cannot be read (the process exists). ``ProcessLookupError`` when there is no such live process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc, or another user's process hidden (hidepid): ask the kernel
        try:
            os.kill(pid, 0)  # ProcessLookupError when the pid is gone
        except PermissionError:  # it exists, owned by someone else
            pass
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (command name)": state, ppid, ...
    if fields[0] in ("Z", "X"):  # dead, not yet reaped
        raise ProcessLookupError(pid)
    boot = _boot_id()
    return f"{boot}:{fields[19]}" if boot else None  # field 22 of proc(5): starttime


@functools.cache
def _boot_id() -> str | None:
    """This kernel's boot id (Linux), None where it cannot be read."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _this_process() -> dict[str, Any]:
    """The owner that a trial this process starts records (:class:`_JournalStorage`)."""
    host_id, pid = _host_id(), os.getpid()
    return {"host": host_id.split("|")[0], "host_id": host_id, "pid": pid, "started": _process_start(pid)}


def _booted_here(owner: Mapping[str, Any]) -> bool:
    """Whether an owner surely ran on this machine since its last boot: its start carries this boot's id, and its
    host id a machine id and a pid namespace. Only then does its verdict outweigh a database's heartbeat (hosts of
    one name without a machine id, such as containers, look alike; pid 1 is everyone's)."""
    started, host_id, boot = owner.get("started"), str(owner.get("host_id", "")), _boot_id()
    return (boot is not None and isinstance(started, str) and started.split(":", 1)[0] == boot
            and all(host_id.split("|")[1:]) and len(host_id.split("|")) == 3)


def _owner_gone(owner: Mapping[str, Any]) -> str | None:
    """Why the process that owns a RUNNING trial is known to be dead; None when it lives, or ran on another host
    (which cannot be judged from here)."""
    pid = owner.get("pid")
    if owner.get("host_id") != _host_id() or not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    try:
        started = _process_start(pid)
    except ProcessLookupError:
        return f"its process {pid} on {owner.get('host')} is gone"
    if started is not None and owner.get("started") not in (None, started):
        return f"its process {pid} on {owner.get('host')} is gone (the pid now belongs to another process)"
    return None


def _redact(text: str) -> str:
    """Hide the passwords of the URLs in ``text`` (a storage URL, or a command line holding one) for messages,
    records and exported configs: ``user:***@host``, and a ``password=`` query parameter."""
    text = re.sub(r"(://[^:/@\s]+):[^@\s]*@", r"\1:***@", text)
    return re.sub(r"(?i)([?&](?:password|passwd|pwd)=)[^&\s]*", r"\1***", text)


@contextlib.contextmanager
def _sqlite_lock(url: str, out: Path) -> Iterator[None]:
    """Keep a second ``optimize`` away from an SQLite study that is being optimised (SQLite serialises writers
    badly: the other process would hit "database is locked" in the middle of a trial)."""
    if not url.startswith("sqlite"):
        yield
        return
    from .export import _file_of

    db = _file_of(url)
    if db is not None:  # next to the database file: another --out can reach the same file through --storage
        out = db.parent
        for part in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):  # a read-only one failed at the first write
            if part.is_file() and not os.access(part, os.W_OK):
                raise StorageError(f"cannot write {part}: the file is read-only; make it writable (chmod u+w {part}), "
                                   "or run the study from a copy of the database")
    out.mkdir(parents=True, exist_ok=True)
    with held_alone(out / ".optimize.lock", lambda who: StorageError(
            f"the SQLite study in {out} is already being optimised by {who}; wait for it to finish, or run several "
            "workers on one study with --storage journal:PATH or postgresql://…")):
        yield


def abandoned_trials(study: optuna.Study, url: str) -> bool:
    """Whether the study's RUNNING trials belong to no live process, so they will not finish by themselves (the
    same ``optimize`` fails and retries them): an SQLite study no ``optimize`` holds (:func:`_sqlite_lock`), a
    journal whose trials' owners on this host are gone, or a database server's trials whose heartbeats are stale.
    False when some may still run (a heartbeat within the grace period, an owner on another host)."""
    from .export import _file_of

    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return False
    if url.startswith("journal:"):
        return all(_owner_gone(t.system_attrs.get(_OWNER) or {}) for t in running)
    db = _file_of(url) if url.startswith("sqlite") else None
    if db is None:
        backend = getattr(study._storage, "_backend", study._storage)
        if not isinstance(backend, _RDBStorage):
            return False
        return {t._trial_id for t in running} <= set(backend.stale_reasons(study._study_id))
    try:
        with open(db.parent / ".optimize.lock", "rb") as f:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(f, fcntl.LOCK_UN)
    except FileNotFoundError:
        return True
    except OSError:
        return False  # an optimize holds it (or no flock here: it cannot be told)
    return True


def load_study(name: str | None, storage_url: str) -> optuna.Study:
    """Load an existing study (the only one in the storage when ``name`` is None)."""
    storage = open_storage(storage_url)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if name is None:
        if len(names) != 1:
            raise StorageError(
                f"storage {_redact(storage_url)} holds {len(names)} studies {names}; name one with --study"
            )
        name = names[0]
    if name not in names:
        raise StorageError(
            f"no study {name!r} in {_redact(storage_url)} (it holds {names or 'none'}); check --study and --storage"
        )
    return optuna.load_study(study_name=name, storage=storage)


class _Searched:
    """The study as a sampler that searches the parameters every complete trial shares (NSGA-II, GP) must see it:
    without the trials of fixed candidates (a published schedule the space cannot draw runs as a trial without
    parameters, which would leave those samplers nothing to search: every later draw random)."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, *args: Any, **kwargs: Any) -> list[optuna.trial.FrozenTrial]:
        return [t for t in self._study._get_trials(*args, **kwargs) if "fixed_candidate" not in t.user_attrs]


class _NSGAII(optuna.samplers.NSGAIISampler):
    """NSGA-II over the parameters of the searched trials. Only the search space is inferred without the fixed
    candidates: its generations index trials by number, and a fixed candidate never draws, so it joins none."""

    def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
        return super().infer_relative_search_space(cast(optuna.Study, _Searched(study)), trial)


# the stock sampler's storage keys: a study begun with it keeps its generations
_NSGAII._GENERATION_KEY = optuna.samplers.NSGAIISampler._GENERATION_KEY
_NSGAII._PARENT_CACHE_KEY_PREFIX = optuna.samplers.NSGAIISampler._PARENT_CACHE_KEY_PREFIX


class _GP(optuna.samplers.GPSampler):
    """GP over the searched trials: it reads every complete trial's parameters, so it sees none without them."""

    def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
        return super().infer_relative_search_space(cast(optuna.Study, _Searched(study)), trial)

    def sample_relative(self, study: Any, trial: Any, search_space: Any) -> Any:
        return super().sample_relative(cast(optuna.Study, _Searched(study)), trial, search_space)

    def sample_independent(self, study: Any, trial: Any, name: str, distribution: Any) -> Any:
        return super().sample_independent(cast(optuna.Study, _Searched(study)), trial, name, distribution)


def _sampler(name: str, seed: int, n_objectives: int) -> optuna.samplers.BaseSampler:
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return _NSGAII(seed=seed, population_size=20)
    if name == "gp":
        return _GP(seed=seed)
    with experimental():
        return optuna.samplers.TPESampler(
            seed=seed, multivariate=True, group=True, constant_liar=True, n_startup_trials=10
        )


# ------------------------------------------------------------------------------------------------ helpers
def candidate_of(trial: optuna.trial.FrozenTrial) -> Candidate:
    return Candidate.from_dict(trial.user_attrs["candidate"])


def _img_s(trial: optuna.trial.FrozenTrial) -> float:
    return float((trial.user_attrs.get("throughput") or {}).get("img_s", 0.0))


def pareto_trials(
    study: optuna.Study, trials: list[optuna.trial.FrozenTrial] | None = None, speed: bool | None = None
) -> list[optuna.trial.FrozenTrial]:
    """Feasible, complete trials not dominated in (top1 ↑, GFLOPs ↓), and img/s ↑ where throughput is an objective
    (``speed``; None: read from the study), sorted by GFLOPs, the first trial of each candidate only; of ``trials``
    when given (a snapshot that other tables are made from too, while workers keep adding trials)."""
    if speed is None:  # --objectives top1,gflops,throughput
        speed = "throughput" in (study.metric_names or ())
    done, seen = [], set()
    for t in study.get_trials(deepcopy=False) if trials is None else trials:
        if t.state == TrialState.COMPLETE and t.user_attrs.get("feasible") and "top1" in t.user_attrs:
            key = json.dumps(t.user_attrs.get("candidate", t.number), sort_keys=True)
            if key not in seen:
                seen.add(key)
                done.append(t)
    def gains(t: optuna.trial.FrozenTrial) -> tuple[float, ...]:  # every coordinate maximised
        return t.user_attrs["top1"], -t.user_attrs["gflops"], *((_img_s(t),) if speed else ())

    points = [gains(t) for t in done]
    front = [
        t for t, p in zip(done, points, strict=True)
        if not any(q != p and all(b >= a for a, b in zip(p, q, strict=True)) for q in points)
    ]
    return sorted(front, key=lambda t: t.user_attrs["gflops"])


def _front_points(
    study: optuna.Study, trials: list[optuna.trial.FrozenTrial], speed: bool
) -> list[tuple[float, float, float]]:
    """(GFLOPs, search top-1, img/s) of the front; img/s is 0 unless throughput is an objective (``speed``)."""
    return [(t.user_attrs["gflops"], t.user_attrs["top1"], _img_s(t) if speed else 0.0)
            for t in pareto_trials(study, trials, speed)]


def _best_at_or_below(front: list[tuple[float, float, float]], gflops: float, img_s: float = 0.0) -> float:
    """Best search top-1 among front points that cost at most ``gflops`` and run at ``img_s`` or faster (−inf when
    none): a candidate that cannot beat it is dominated."""
    return max((acc for g, acc, s in front if g <= gflops + 1e-12 and s >= img_s), default=-math.inf)


def _upper_bound(correct: int, n: int, total: int, z: float = 3.0) -> float:
    """Upper bound (percent) on the final top-1 after ``n`` of ``total`` images: the remaining images at the
    Wilson upper bound of the accuracy seen so far (z = 3: about one hopeful trial in 700 stopped wrongly)."""
    if n >= total:
        return 100.0 * correct / max(total, 1)
    p = correct / n
    denom = 1 + z * z / n
    centre = p + z * z / (2 * n)
    ucb = min(1.0, (centre + z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / denom)
    return 100.0 * (correct + ucb * (total - n)) / total


# ---------------------------------------------------------------------------------------------- objective
@dataclass
class _Context:
    """Everything a trial needs, built once per worker."""

    spec: StudySpec
    space: SearchSpace
    source: Any  # searcher.models.ModelSource
    search: Split
    budget: float  # GFLOPs
    full_gflops: float
    min_throughput: float | None

    @property
    def search_images(self) -> int:
        """The images a trial evaluates in full: the search split, or its first ``spec.search_images``."""
        n = len(self.search)
        return n if self.spec.search_images is None else min(self.spec.search_images, n)

    def over_budget(self, gflops: float) -> bool:
        """Whether ``gflops`` exceed the budget by more than the analytic count's rounding."""
        return gflops > self.budget * (1 + 1e-9)

    def draw(self, trial: optuna.trial.BaseTrial) -> tuple[Candidate, dict[str, Any]]:
        """The space's candidate for ``trial`` on this model and budget (:meth:`SearchSpace.suggest`)."""
        source = self.source
        return self.space.suggest(trial, source.depth_of, source.flops, self.budget,
                                  lambda red, depth, rs, **p: build_schedule(source, red, depth, rs, **p))

    @property
    def times_trials(self) -> bool:
        """Whether trials measure their throughput: only when a decision depends on it (a constraint, then for
        candidates that could still be Pareto-optimal, or an objective); otherwise the final Pareto set is timed after
        the search (:func:`evaluate_pareto`)."""
        return self.min_throughput is not None or "throughput" in self.spec.objectives


def build_schedule(source: Any, reducer: str, depth: int, rs: list[int], **params: Any) -> Schedule:
    """A recipe schedule from per-block r. DiffRate's kept-token lists come from the same token counts: of the
    tokens a block removes, a share ``prune_share`` is pruned (by CLS attention) and the rest merged."""
    if reducer != "diffrate":
        return Schedule.recipe(reducer, depth, rs, **params)
    from .schedule import tokens_per_block

    share = float(params.pop("prune_share", 0.5))
    counts = tokens_per_block(Schedule.from_list(rs, "tome", depth), source.n_tokens, source.num_prefix)
    prune_kept = [n_in - round(share * (n_in - n_out)) for n_in, n_out in zip(counts[:-1], counts[1:], strict=True)]
    return Schedule.recipe("diffrate", depth, prune_kept=prune_kept, merge_kept=list(counts[1:]), **params)


def _objective(ctx: _Context, shared: bool = False):
    """The trial function. ``shared``: other processes may finish trials meanwhile (any storage but SQLite, which
    one run holds alone), so the front that decides early stopping is read again before each decision instead of
    once per trial."""
    spec, space, source = ctx.spec, ctx.space, ctx.source
    speed = "throughput" in spec.objectives

    def objective(trial: optuna.Trial) -> tuple[float, ...]:
        t0 = time.perf_counter()
        if "fixed_candidate" in trial.user_attrs:  # a published recipe the sampler does not draw
            cand, facts = Candidate.from_dict(trial.user_attrs["fixed_candidate"]), dict[str, Any]()
        elif "fixed_schedule" in trial.user_attrs:  # DiffRate's published schedule, in a study begun before 2026-12-07
            fixed = Schedule.from_dict(trial.user_attrs["fixed_schedule"])
            cand, facts = Candidate("diffrate", fixed, source.full_arch(space.architecture)), dict[str, Any]()
        else:
            cand, facts = ctx.draw(trial)
        cand = replace(cand, schedule=cand.schedule.capped(source.n_tokens, source.num_prefix))  # one spelling
        g = source.flops(cand.arch, cand.schedule)
        over = ctx.over_budget(g)
        # a published schedule over the budget (DiffRate's 2.91 GFLOPs at "2.9"): evaluated as a reference, infeasible
        reference = over and "fixed_candidate" in trial.user_attrs
        finished = [] if over else _finished(trial.study)  # an over-budget draw is recorded each time, unevaluated
        twin = _twin(finished, cand)
        if twin is not None:  # the sampler drew a candidate that already ran: its result, not a second evaluation
            _reuse(trial, twin)
        for k, v in facts.items():
            trial.set_user_attr(k, v)
        trial.set_user_attr("candidate", cand.to_dict())
        trial.set_user_attr("gflops", g)
        trial.set_user_attr("tokens", source.tokens(cand))
        if over and not reference:
            return _infeasible(trial, g, ctx, OVER_BUDGET)
        trial.set_constraint("gflops", g - ctx.budget)
        trial.set_user_attr("feasible", not over)  # under the budget; a throughput floor may still say otherwise
        if reference:
            trial.set_user_attr("infeasible", PUBLISHED_OVER_BUDGET)
        trial.set_user_attr("search_s", time.perf_counter() - t0)
        # throughput as an objective: a candidate slower than the front is dominated only by faster points, so it is
        # timed first and early stopping compares it with the front at its FLOPs and speed (timed before the model
        # to evaluate is built: building the timed copy unpatches the shared model)
        tp = _timed(trial, ctx, cand) if speed else None
        img_s = tp.img_s if tp else 0.0
        model = source.build(cand.arch, cand.schedule)
        t1 = time.perf_counter()
        total = ctx.search_images
        # baselines (the published recipes) are always evaluated in full: they are what the search is compared with
        is_baseline = "baseline" in trial.user_attrs
        early_stop = spec.early_stop and not is_baseline
        best_here = _best_at_or_below(_front_points(trial.study, finished, speed), g, img_s)
        reading = 0.0  # seconds spent reading the front again: search overhead, not evaluation

        def best_now() -> float:
            nonlocal best_here, reading
            if shared:
                t = time.perf_counter()
                best_here = _best_at_or_below(_front_points(trial.study, _finished(trial.study), speed), g, img_s)
                reading += time.perf_counter() - t
            return best_here

        acc = None
        lock = device_lock()
        waited = lock.waited

        def evaluated() -> None:  # the seconds spent evaluating, not waiting for another process's timing
            wait = lock.waited - waited
            _waited(trial, wait)
            trial.set_user_attr("eval_s", time.perf_counter() - t1 - reading - wait)

        chunks = evaluate_chunks(  # each batch beside other evaluations, never beside a timing
            model, ctx.search, spec.batch_size, chunk=spec.chunk, limit=total, lock=lock
        )
        for acc in chunks:
            if early_stop and acc.n < total and _upper_bound(acc.correct1, acc.n, total) < best_now():
                trial.set_user_attr("top1_partial", acc.top1)
                trial.set_user_attr("images_evaluated", acc.n)
                evaluated()
                raise optuna.TrialPruned(
                    f"top-1 {acc.top1:.2f}% after {acc.n}/{total} images cannot reach the "
                    f"front ({best_here:.2f}% at ≤ {g:.4g} GFLOPs)"
                )
        assert acc is not None
        trial.set_user_attr("top1", acc.top1)
        trial.set_user_attr("top5", acc.top5)
        trial.set_user_attr("images_evaluated", acc.n)
        evaluated()
        values: dict[str, float] = {"top1": acc.top1, "gflops": g}
        floor_only = ctx.times_trials and "throughput" not in spec.objectives
        if floor_only and not is_baseline and acc.top1 < best_now():
            # under a floor, a candidate the (feasible) front dominates cannot be Pareto-optimal whatever its
            # throughput, and all it dominates the front dominates too: its feasibility decides nothing (the
            # published recipes are timed all the same: they are what the search is compared with)
            trial.set_user_attr("not_timed", f"dominated by the front ({best_here:.2f}% at ≤ {g:.4g} GFLOPs)")
        elif ctx.times_trials:
            tp = tp or _timed(trial, ctx, cand)
            values["throughput"] = tp.img_s
            if ctx.min_throughput is not None:
                trial.set_constraint("throughput", ctx.min_throughput - tp.img_s)
                if tp.img_s < ctx.min_throughput:
                    trial.set_user_attr("feasible", False)
                    trial.set_user_attr("infeasible", f"below the throughput floor ({tp.img_s:.4g} img/s)")
        return tuple(values.get(o, 0.0) for o in spec.objectives)

    def recorded(trial: optuna.Trial) -> tuple[float, ...]:
        """The objective, keeping why a trial failed (NaN/inf logits, out of memory, Ctrl-C): Optuna only logs it."""
        try:
            return objective(trial)
        except optuna.TrialPruned:
            raise
        except (Exception, KeyboardInterrupt) as e:
            with contextlib.suppress(Exception):
                trial.set_user_attr("fail_reason", f"{type(e).__name__}: {str(e).strip()[:500]}".rstrip(": "))
            if "out of memory" in str(e):
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()  # what the failed candidate held, for the next one
            raise

    return recorded


def _twin(finished: list[optuna.trial.FrozenTrial], cand: Candidate) -> optuna.trial.FrozenTrial | None:
    """The first of the ``finished`` trials with the same candidate (same subnet and schedule), or None.
    Different parameters often give one candidate (r is an integer solved from a continuous profile; parameters of
    ops a schedule does not use), and evaluation is deterministic, so its result stands for this trial too."""
    key = cand.to_dict()
    for t in finished:
        if t.user_attrs.get("candidate") == key and not is_repeat(t):
            return t
    return None


def is_repeat(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether the trial drew a candidate already evaluated (:func:`_reuse`): it does not count toward ``trials``."""
    return "duplicate_of" in trial.user_attrs


OVER_BUDGET = "over the FLOPs budget"  # the ``infeasible`` reason of a draw recorded unevaluated (:func:`_infeasible`)
PUBLISHED_OVER_BUDGET = "a published recipe over the FLOPs budget, evaluated as a reference"


def is_over_budget(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether the trial drew a candidate over the FLOPs budget (``per-block`` r, ``per-layer`` architecture: the
    budget-aware draws never are), recorded unevaluated: it does not count toward ``trials``."""
    return trial.user_attrs.get("infeasible") == OVER_BUDGET


def is_evaluated(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a finished trial is a candidate evaluated (in full or stopped early), what ``trials`` counts: not a
    repeat of one already evaluated, nor a draw over the budget."""
    return not (is_repeat(trial) or is_over_budget(trial))


def early_stop_savings(trials: list[optuna.trial.FrozenTrial], search_images: int | None) -> dict[str, Any]:
    """What early stopping saved, from the trials' attributes: ``stopped_early`` (evaluated trials the front
    stopped), ``images_evaluated`` (by every evaluated trial), ``images_saved_by_early_stop`` (each stopped trial
    against ``search_images``, a full evaluation; None: the most any trial evaluated, as a baseline always does) and
    ``saved_share`` (of the images a search without early stopping would have evaluated)."""
    # a repeat evaluated nothing: it has no images_evaluated
    evaluated = [t for t in trials if t.state in FINISHED and "images_evaluated" in t.user_attrs]
    stopped = [t for t in evaluated if "top1_partial" in t.user_attrs]
    full = search_images or max((t.user_attrs["images_evaluated"] for t in evaluated), default=0)
    images = sum(t.user_attrs["images_evaluated"] for t in evaluated)
    saved = sum(full - t.user_attrs["images_evaluated"] for t in stopped)
    return {
        "stopped_early": len(stopped),
        "images_evaluated": images,
        "images_saved_by_early_stop": saved,
        "saved_share": saved / max(images + saved, 1),
    }


def describe_early_stop(savings: dict[str, Any]) -> str:
    """``savings`` (:func:`early_stop_savings`) in words, as the optimize summary and the report header say it."""
    text = f"{savings['stopped_early']} stopped early"
    if savings["images_saved_by_early_stop"]:
        text += f", saving {savings['saved_share']:.0%} of the search images"
    return text


def _reuse(trial: optuna.Trial, twin: optuna.trial.FrozenTrial) -> NoReturn:
    """End the trial as a repeat of ``twin`` (``duplicate_of``: the twin's number, whose result stands for it), and
    as pruned: a repeat adds nothing to the front, and as a pruned trial it tells TPE that this region gave nothing
    new. (Returning the twin's values instead, the usual Optuna recipe, adds the same good point again and again: on
    a space where many parameters give one candidate, such as the budget-aware architecture, TPE then keeps drawing
    that candidate.) Nothing but its parameters and ``duplicate_of`` is written (no candidate, FLOPs or constraint:
    those are the twin's, and a repeat is under the budget): each attribute is a storage transaction, and a repeat
    should cost as little as it can."""
    trial.set_user_attr("duplicate_of", twin.number)
    raise optuna.TrialPruned(f"the same candidate as trial {twin.number}: its result stands")


def _infeasible(trial: optuna.Trial, g: float, ctx: _Context, why: str) -> tuple[float, ...]:
    """Record an over-budget candidate without evaluating it: a violated constraint, top-1 0."""
    trial.set_user_attr("feasible", False)
    trial.set_user_attr("infeasible", why)
    trial.set_constraint("gflops", max(g - ctx.budget, 1e-9))
    values = {"top1": 0.0, "gflops": g, "throughput": 0.0}
    return tuple(values[o] for o in ctx.spec.objectives)


# ---------------------------------------------------------------------------------------------- the loop
@dataclass
class OptimizeResult:
    study: optuna.Study
    out: Path
    budget: float
    full_gflops: float
    pareto: list[dict[str, Any]]  # one row per Pareto-optimal trial, re-evaluated on the test split
    stats: dict[str, Any]
    context: _Context
    test_split: Split
    interrupted: bool = False  # a Ctrl-C stopped the study after its current trial (the same command resumes it)
    timed_out: bool = False  # the timeout stopped it before its trials were done (the same command goes on)

    def test(self, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
        """The test-split result of any finished trial (evaluated once, then kept in the study)."""
        return evaluate_test(self.study, self.context, trial, self.test_split, self.context.spec)


def shipped_data_hint(spec: StudySpec, e: DataError) -> DataError:
    """``e``, for a shipped spec with the way to point it at other folders (its data roots are the README's)."""
    from .space import SHIPPED

    if Path(spec.base_dir).resolve() != (SHIPPED / "studies").resolve():
        return e
    return DataError(f"{e}. The shipped spec {spec.name} reads its data there: for another folder, copy "
                     f"{SHIPPED / 'studies' / spec.name}.yaml, edit its data roots and run the copy "
                     "(--study my-spec.yaml)")


def _context(spec: StudySpec) -> tuple[_Context, dict[str, Split]]:
    from .models import ModelSource

    space = spec.load_space()
    checkpoint = spec.checkpoint_path()  # recorded absolute
    data = resolve_data_spec(spec.data, spec.base_dir)
    # before the weights: a download (350 MB for ViT-B) to learn that the data is not there or a key is misspelt
    try:
        check_data(data, need=("search", "test"))
    except DataError as e:
        raise shipped_data_hint(spec, e) from None
    import torch

    with torch.device("meta"):  # the shapes alone, before the weights are fetched and the data decoded
        shapes = ModelSource.open(spec.model, checkpoint, space.architecture, spec.model_kwargs, weights=False)
    _check_costs(spec, space, shapes)
    source = ModelSource.open(spec.model, checkpoint, arch_space=space.architecture, model_kwargs=spec.model_kwargs)
    full, budget = _check_costs(spec, space, source)  # the checkpoint's: an AutoFormer file brings its own head
    if spec.diffrate_baseline:  # a wrong depth or count is an error now, not a failed trial later
        depth = source.depth_of(source.full_arch(space.architecture))
        try:
            published = Schedule.recipe(
                "diffrate",
                depth,
                prune_kept=spec.diffrate_baseline["prune_kept"],
                merge_kept=spec.diffrate_baseline["merge_kept"],
            )
            check_fits(published, source.n_tokens, source.num_prefix, source.averages_patches)
            given = source.n_tokens  # a published schedule's counts are what each block keeps of what it gets
            kept = zip(spec.diffrate_baseline["prune_kept"], spec.diffrate_baseline["merge_kept"], strict=True)
            for i, (p, m) in enumerate(kept):
                if not m <= p <= given:
                    raise ConfigError(
                        f"block {i} keeps {p} tokens after pruning and {m} after merging of the {given} it gets; "
                        "each block keeps at most what it gets, and merging follows pruning (merge_kept ≤ prune_kept)")
                given = m
        except ConfigError as e:
            raise ConfigError(f"diffrate_baseline does not fit {spec.model} ({depth} blocks): {e}") from e
    splits = load_splits(data, outputs=getattr(source.model, "num_classes", None))
    # recorded with absolute folders and the class order written out: exported configs re-evaluate anywhere
    spec = replace(spec, data=resolve_data_spec(data, splits=splits))
    for split in splits.values():  # before the study exists: a mismatch would fail every trial
        source.check_data(split, f"set the data's 'model' (or 'data_config': {{input_size: "
                                 f"{list(source.input_shape)}}}) to match the model")
    _check_preprocessing(spec, source)
    min_tp = parse_rate(spec.min_throughput) if spec.min_throughput else None
    return _Context(spec, space, source, splits["search"], budget, full, min_tp), splits


def _check_costs(spec: StudySpec, space: SearchSpace, source: Any) -> tuple[float, float]:
    """The unreduced model's GFLOPs and the budget in GFLOPs, after checking that the space fits the model and
    that the budget lies between the space's cheapest candidate and the unreduced model (``source``: its shapes
    are enough)."""
    if space.architecture is not None and source.preset is not None:  # a subnet outside them is untrained
        keys = ("embed_dim", "depth", "num_heads", "mlp_ratio")
        outside = {k: sorted(set(getattr(space.architecture, k)) - set(getattr(source.preset, k))) for k in keys}
        if any(outside.values()):
            trained = ", ".join(f"{k} {list(getattr(source.preset, k))}" for k in keys)
            raise ConfigError(
                f"the space's architecture choices {', '.join(f'{k} {v}' for k, v in outside.items() if v)} are not "
                f"among those the {spec.model} supernet was trained with ({trained}): its subnets there would be "
                f"untrained slices of its weights, or not fit; use its space (space: "
                f"{spec.model.removesuffix('-supernet')}) or a subset of its choices")
    space.check_model(source.depths(space.architecture), source.n_tokens, source.num_prefix)
    if getattr(source.model, "cls_token", None) is None:  # before any trial: each such draw would fail
        from .reduce import NEEDS_CLS_ATTENTION

        depth = source.depth_of(source.full_arch(space.architecture))
        ranking = [red for red in space.reducers if red != "none" and any(
            x.op in NEEDS_CLS_ATTENTION for x in build_schedule(source, red, depth, [1] * depth).layers)]
        if ranking:
            raise ConfigError(f"{', '.join(ranking)} rank tokens by CLS attention but {spec.model} has no class "
                              "token; remove them from the space's reducers")
    full = source.flops(
        source.full_arch(space.architecture),
        Schedule.none(source.depth_of(source.full_arch(space.architecture))),
    )
    budget = parse_budget(str(spec.budget)).resolve(full)
    if budget >= full * (1 - 1e-9):  # nothing to search (the unreduced model's FLOPs, a unit prefix off)
        where = "above" if budget > full * (1 + 1e-3) else "all of"
        raise ConfigError(
            f"budget {spec.budget} ({budget:.4g} GFLOPs) is {where} the unreduced model's {full:.4g} GFLOPs, so "
            f"nothing needs removing; give a budget below it, such as {full / 2:.3g}GFLOPs or 50%"
        )
    cheapest = source.cheapest_gflops(space)
    if cheapest > budget:
        reduces = set(space.reducers) != {"none"}
        how = ("the smallest subnet, " if space.architecture else "") + (
            f"every block at r={int(space.r.high)}" if reduces else "no tokens removed")
        fix = "widen schedule.r" if reduces else "list a reducer in the space"
        raise ConfigError(
            f"budget {spec.budget} ({budget:.4g} GFLOPs) is below the cheapest candidate of the "
            f"space ({cheapest:.4g} GFLOPs: {how}); raise the budget or {fix}"
        )
    return full, budget


def _check_preprocessing(spec: StudySpec, source: Any) -> None:
    """Warn when an ImageFolder is preprocessed as another timm model than the one searched, with another data
    config (mean/std, crop, interpolation): easy to miss when a shipped spec is copied and only ``model`` edited."""
    named = spec.data.get("model")
    if (spec.data.get("kind") != "imagefolder" or source.family != "timm-vit" or not isinstance(named, str)
            or named == spec.model):
        return
    keys = ("mean", "std", "crop_pct", "crop_mode", "interpolation", "input_size")
    theirs, ours = data_config_for(named, spec.data.get("data_config")), data_config_for(source.model)
    differ = [k for k in keys if theirs.get(k) != ours.get(k)]
    if differ:
        log.warning(
            f"the data is preprocessed as {named} but the model is {spec.model}, whose timm data config differs "
            f"({', '.join(f'{k} {theirs.get(k)} vs {ours.get(k)}' for k in differ)}); set the data's model to "
            f"{spec.model} unless that is meant"
        )


def _enqueue_baselines(study: optuna.Study, ctx: _Context) -> None:
    """The published recipe of every searched reducer at the budget: constant r, the least that fits (RAPID, ToFu,
    top-k with their papers' defaults), on the largest subnet for supernets; DiffRate's published schedule when
    the spec gives one. A recipe the space can draw is enqueued as its parameters, so the sampler learns from it;
    one outside the space (a range or choice that excludes a paper default, an r cap below the recipe's r, a size
    range short of the largest subnet) is evaluated as a fixed candidate, which the sampler does not see; DiffRate's
    schedule over the budget, as a reference (infeasible)."""
    if study.user_attrs.get("baselines_enqueued"):
        return
    space, source = ctx.space, ctx.source
    arch = source.full_arch(space.architecture)
    arch_params = None
    if space.architecture is not None:
        arch_params = space.architecture.params_of_largest(space.arch_size(ctx.full_gflops, ctx.budget).high)
    drawn_arch = arch if space.architecture is not None else None  # a candidate's arch, as the space draws it
    depth = source.depth_of(arch)
    max_depth = max(space.architecture.depth) if space.architecture is not None else depth
    queued = {t.user_attrs.get("baseline") for t in study.get_trials(deepcopy=False)}
    for red in space.reducers:
        if red == "none":  # the unreduced largest subnet is over any budget below 100 %
            continue
        params = space.baseline_params(red, depth, max_depth, arch_params)
        recipe = _recipe_params(red, params)

        def build(rs: list[int], red: str = red, recipe: dict[str, Any] = recipe) -> Schedule:
            return build_schedule(source, red, depth, rs, positions=space.positions, **recipe)

        r = source.constant_r_for_budget(arch, build, ctx.budget)
        published = Candidate(red, build([r] * depth).capped(source.n_tokens, source.num_prefix), drawn_arch)
        if ctx.over_budget(source.flops(arch, published.schedule)):
            log.warning(f"no constant r of {red} meets the budget: its published recipe is left out")
            continue
        if space.parametrisation == "per-block":
            params.update({f"r{i}": r for i in range(max_depth)})
        outside = _outside_space(ctx, params, published)
        attrs = {"baseline": f"{red} constant r"}
        if outside is None:
            study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=True)
        elif attrs["baseline"] not in queued:  # enqueued already by a run stopped in the middle of this loop
            queued.add(attrs["baseline"])
            log.info(f"the published {red} recipe (r={r}) lies outside the space ({outside}): it is evaluated as "
                     "a baseline, and the sampler does not draw it")
            study.enqueue_trial({}, user_attrs={**attrs, "fixed_candidate": published.to_dict()})
    if ctx.spec.diffrate_baseline and "diffrate published" not in queued:
        kept = ctx.spec.diffrate_baseline
        fixed = Schedule.recipe(
            "diffrate", depth, prune_kept=kept["prune_kept"], merge_kept=kept["merge_kept"], positions=space.positions
        )
        g = source.flops(arch, fixed.capped(source.n_tokens, source.num_prefix))
        if ctx.over_budget(g):
            log.warning(f"DiffRate's published schedule costs {g:.4g} GFLOPs, over the budget ({ctx.budget:.4g}): it "
                        "is evaluated as a reference, and cannot be on the front")
        study.enqueue_trial({}, user_attrs={"baseline": "diffrate published",
                                            "fixed_candidate": Candidate("diffrate", fixed, drawn_arch).to_dict()})
    study.set_user_attr("baselines_enqueued", True)


def _fail_dead_trials(study: optuna.Study, storage_url: str, trials: int | None = None) -> None:
    """Fail (and, by the retry callback, queue again) the trials of dead workers now. Optuna does it only before it
    runs a trial: a worker killed in the study's last trial would stay RUNNING for ever when the resumed study has
    nothing left to run. Both storage kinds count: RDB by heartbeat, the journal file by owner process
    (:func:`open_storage`). An SQLite study is this process's alone (:func:`_sqlite_lock`): a trial RUNNING now is
    a killed run's, whatever the age of its heartbeat. ``trials``: the study's count, which once reached needs no
    retry but of a published recipe."""
    from .export import _file_of

    backend = getattr(study._storage, "_backend", study._storage)
    if _file_of(storage_url) is not None and isinstance(backend, _RDBStorage):  # the file _sqlite_lock holds
        backend.orphans = frozenset(t._trial_id for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
    retry = study._storage.get_heartbeat_stale_trial_callback() if isinstance(study._storage, BaseHeartbeat) else None
    if isinstance(retry, _Retry):
        retry.trials = trials
    with experimental():
        optuna.storages.fail_stale_trials(study)


def _requeue_interrupted_baselines(study: optuna.Study) -> None:
    """Queue again a published recipe whose every trial failed by interruption (a second Ctrl-C) or a dead worker
    whose retries ran out: the study would end without it, and be compared with fewer recipes (until 2026-12-07)."""
    by_label: dict[str, list[optuna.trial.FrozenTrial]] = {}
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("baseline"):
            by_label.setdefault(t.user_attrs["baseline"], []).append(t)
    for label, trials in by_label.items():
        last = trials[-1]
        why = str(last.user_attrs.get("fail_reason", ""))
        if all(t.state == TrialState.FAIL for t in trials) and (_ABANDONED in why or "worker died" in why):
            log.warning(f"the published recipe '{label}' did not finish (trial {last.number}: {why}); running it "
                        "again")
            keep = {k: v for k, v in last.user_attrs.items() if k in ("baseline", "fixed_candidate")}
            study.enqueue_trial(last.params or last.system_attrs.get("fixed_params", {}), user_attrs=keep)


def _outside_space(ctx: _Context, params: dict[str, Any], published: Candidate) -> str | None:
    """None when the space draws ``published`` from ``params``; else what keeps it out (the parameters outside
    their range or choices, or how the candidate they draw differs)."""
    trial = optuna.trial.FixedTrial(params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # FixedTrial's "out of the range": checked below
        try:
            drawn, _ = ctx.draw(trial)
        except ConfigError:
            raise
        except ValueError as e:  # a value the space's choices do not list
            if "not found" in str(e):  # a parameter baseline_params does not give: a bug here, not the user's
                raise
            return str(e).rstrip(".")
    outside = [f"{name}={params[name]}" for name, dist in trial.distributions.items()
               if not dist._contains(dist.to_internal_repr(params[name]))]
    if outside:
        return ", ".join(outside)
    drawn = replace(drawn, schedule=drawn.schedule.capped(ctx.source.n_tokens, ctx.source.num_prefix))
    if drawn.arch != published.arch:
        return "a smaller subnet: architecture.size does not reach the largest"
    if drawn.schedule.prop_attn != published.schedule.prop_attn:
        return f"proportional attention {'on' if drawn.schedule.prop_attn else 'off'} in the space"
    if drawn != published:
        return "its parameters draw another candidate"
    return None


def _recipe_params(red: str, params: Mapping[str, Any]) -> dict[str, Any]:
    prefix = f"{red}_"
    return {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}


class _Progress:
    """After each trial: stop the study once it is :func:`_done`, and show a tqdm bar (trials done, feasible count,
    best search top-1 under the budget); both from one read of the trials. :meth:`show` alone draws the bar of a
    process whose workers run the trials."""

    def __init__(self, study: optuna.Study, target: int, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self.target = target
        self.bar = tqdm(
            total=target,
            initial=min(_counts(_finished(study))[0], target),
            desc=study.study_name,
            unit="trial",
            disable=not enabled,
            dynamic_ncols=True,
        )

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        trials = _finished(study)
        if _done(trials, self.target):
            study.stop()
        self.show(trials)

    def show(self, trials: list[optuna.trial.FrozenTrial]) -> None:
        if self.bar.disable:
            return
        evaluated = [t for t in trials if is_evaluated(t)]
        feasible = [t for t in evaluated if t.user_attrs.get("feasible")]
        best = max((t.user_attrs.get("top1", 0.0) for t in feasible), default=float("nan"))
        self.bar.n = min(len(evaluated), self.bar.total)
        over = sum(map(is_over_budget, trials))
        self.bar.set_postfix(feasible=len(feasible), repeats=sum(map(is_repeat, trials)),
                             **({"over_budget": over} if over else {}), best_top1=f"{best:.2f}")
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


DRAWS_PER_TRIAL = 3  # a study stops after this many draws per trial asked for, repeats and over-budget draws included


def _finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=FINISHED)


def _counts(finished: list[optuna.trial.FrozenTrial]) -> tuple[int, int]:
    """(candidates evaluated, finished trials). A trial that drew a candidate already evaluated reuses its result
    (:func:`_reuse`), one over the budget is recorded unevaluated: neither counts toward the study's ``trials``."""
    return sum(map(is_evaluated, finished)), len(finished)


def _done(finished: list[optuna.trial.FrozenTrial], trials: int) -> bool:
    """``trials`` candidates evaluated, or ``DRAWS_PER_TRIAL`` × ``trials`` draws finished (a space with fewer
    distinct candidates, or a sampler that keeps repeating itself)."""
    evaluated, n = _counts(finished)
    return evaluated >= trials or n >= DRAWS_PER_TRIAL * trials


_ABANDONED = "abandoned with Ctrl-C"  # a trial's fail reason after a second Ctrl-C


@contextlib.contextmanager
def _graceful_sigint(study: optuna.Study, announce: bool = True) -> Iterator[dict[str, int]]:
    """First Ctrl-C: finish the current trial, then stop (before ``study.optimize`` runs: do not start it; the caller
    checks the count of presses this yields). Second: abandon the trial (it is marked failed). ``announce``: say so
    on stderr (a worker of :func:`_run_workers` leaves that to its parent).

    The KeyboardInterrupt of the second press is never raised inside Optuna's storage code, where it could leave a
    lock held or a trial half written: the press is delivered again 120 ms later, and raised once the block ends if
    it was not by then."""
    pressed = {"n": 0}
    if not (hasattr(signal, "SIGINT") and sys.platform != "win32"):
        yield pressed
        return
    retry: list[threading.Timer] = []  # the pending re-delivery of a press that came during a storage call

    def handler(signum, frame):
        pressed["n"] += 1
        if pressed["n"] == 1:
            if announce:
                print("\nstopping after the current trial (Ctrl-C again to abandon it)", file=sys.stderr)
            with contextlib.suppress(RuntimeError):  # not inside study.optimize: the caller checks ``pressed``
                study.stop()
            return
        for pending in retry:
            pending.cancel()
        retry.clear()
        if in_storage(frame):
            # delivered again once on_sigint no longer takes it for the same press signalled twice
            retry.append(threading.Timer(ECHO_S + 0.02, os.kill, (os.getpid(), signal.SIGINT)))
            retry[0].daemon = True
            retry[0].start()
            return
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # the trial is failed as abandoned, not with a traceback
        raise KeyboardInterrupt(_ABANDONED)

    with on_sigint(handler):
        try:
            yield pressed
        finally:
            if retry:  # a press sent by now reaches the handler above while it is still installed
                retry[0].cancel()
                retry[0].join()
    if retry:
        raise KeyboardInterrupt(_ABANDONED)


def run_worker(spec: StudySpec, storage_url: str, progress: bool = False, worker: int = 0) -> None:
    """One worker of :func:`_run_workers`: load the study and optimise until ``spec.trials`` candidates have been
    evaluated (:func:`_done`). Local workers share the machine's cores instead of each taking all of them."""
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // spec.workers))
    ctx, _ = _context(spec)
    _optimize_loop(spec, ctx, storage_url, progress, worker, announce=False)


def _run_workers(spec: StudySpec, storage_url: str, study: optuna.Study, progress: bool = False) -> bool:
    """Run ``spec.workers`` local worker processes on one study, and wait for every one of them (with ``progress``,
    showing the study's progress bar, read from the storage every 2 s).

    Each worker is a fresh interpreter (spawned, as CUDA needs) in a process group of its own (SIGINT held back
    until it has one), so a Ctrl-C at the terminal reaches this process only, which passes every press on to every
    worker (a ``kill -INT`` of this process alone does the same): the first stops each worker after its current
    trial, the second abandons the trials (failed, with the reason) and raises KeyboardInterrupt here once the
    workers are gone. A worker's error stops the others after their current trial and is raised here. When this
    process dies, its workers stop after their current trial (Linux). Whatever happened, the trials of workers that
    died are failed before this returns (by their owner, gone: :class:`_Owned`), and retried if the study needs
    them. Returns whether a Ctrl-C stopped the workers."""
    import multiprocessing
    from multiprocessing import resource_tracker
    from multiprocessing.connection import wait

    mp = multiprocessing.get_context("spawn")
    if hasattr(signal, "pthread_sigmask"):  # POSIX (Windows has no resource tracker, and no signal masks)
        resource_tracker.ensure_running()  # before sigint_held below: starting it unblocks SIGINT in this thread
    procs: list[Any] = []
    pressed = 0

    def stop_workers() -> None:
        for p in procs:
            if p.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGINT)

    def forward(signum, frame):
        nonlocal pressed
        pressed += 1
        if pressed == 1:
            print("\nstopping after the current trials (Ctrl-C again to abandon them)", file=sys.stderr)
        stop_workers()

    results: dict[int, BaseException | None] = {}
    bar = _Progress(study, spec.trials, progress)
    with on_sigint(forward), contextlib.closing(bar):
        pipes: dict[Any, int] = {}
        for i in range(spec.workers):
            if pressed:
                break
            recv, send = mp.Pipe(duplex=False)
            args = (spec, storage_url, i, os.getpid(), send, optuna.logging.get_verbosity())
            p = mp.Process(target=_worker_main, args=args, name=f"worker-{i}")
            with sigint_held():  # in the worker until it runs _worker_main: a press is not raised in its imports
                p.start()
            send.close()
            procs.append(p)
            pipes[recv] = i
            if pressed:  # Ctrl-C while it started: it may have missed the press
                os.kill(p.pid, signal.SIGINT)
        live: dict[Any, Any] = {p.sentinel: p for p in procs}
        while live or pipes:
            ready_now: list[Any] = wait([*live, *pipes], timeout=2.0 if progress else None)
            if progress:
                with contextlib.suppress(Exception):  # a storage hiccup must not stop the workers: the bar waits
                    bar.show(_finished(study))
            for ready in ready_now:
                if ready in live:
                    live.pop(ready).join()
                    continue
                i = pipes.pop(ready)
                with contextlib.suppress(EOFError, OSError):  # EOF: the worker died without a word (killed)
                    results[i] = ready.recv()
                err = results.get(i)
                if err is not None and not isinstance(err, KeyboardInterrupt) and not pressed:
                    pressed = 1  # a worker failed: the others stop after their current trial
                    stop_workers()
    errors = [e for _, e in sorted(results.items()) if e is not None and not isinstance(e, KeyboardInterrupt)]
    dead = [(i, p) for i, p in enumerate(procs) if i not in results]
    try:
        study = optuna.load_study(study_name=spec.name, storage=open_storage(storage_url))
        _fail_dead_trials(study, storage_url, spec.trials)  # a dead worker's, by its owner: gone from this host
    except Exception:
        if not errors:
            raise
    if errors:
        raise errors[0]
    if pressed > 1:
        raise KeyboardInterrupt(_ABANDONED)
    died = [f"worker {i} (pid {p.pid}, " + (f"killed by signal {-p.exitcode})" if (p.exitcode or 0) < 0 else
                                         f"exit code {p.exitcode})") for i, p in dead]
    if died and not pressed:
        what = f"{', '.join(died)} died; its trial is failed, and retried if the study needs it"
        if not _done(_finished(study), spec.trials):
            raise WorkerError(f"{what}; run the same command again to finish the study")
        log.warning(what)
    return pressed > 0


def _parent_died(signum: int, frame: Any) -> None:
    """A worker's SIGUSR1 handler: its parent died, which is one Ctrl-C (stop after the current trial). Linux sends
    the death signal each time the thread that holds the worker ends (as the parent dies its threads end one by one,
    and the worker passes from one to the next), so the signal is SIGUSR1, turned into a single SIGINT here: a
    second would abandon the trial."""
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    os.kill(os.getpid(), signal.SIGINT)


def _worker_main(spec: StudySpec, storage_url: str, worker: int, parent: int, conn: Any, verbosity: int) -> None:
    """A worker process of :func:`_run_workers`: in a process group of its own (only its parent passes Ctrl-C on),
    stopped after its current trial when the parent dies; sends its error (or None) back through ``conn``. It logs
    as its parent does (``verbosity``: Optuna's; the CLI's -v shows every trial)."""
    if hasattr(os, "setpgrp"):
        os.setpgrp()
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # as the CLI does
    optuna.logging.set_verbosity(verbosity)
    if sys.platform == "linux":
        import ctypes

        signal.signal(signal.SIGUSR1, _parent_died)
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGUSR1)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # it died before that: nobody waits for this worker
            return
    result: BaseException | None = None
    try:
        if hasattr(signal, "pthread_sigmask"):  # held back while this interpreter started (see _run_workers): a
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # press by then is raised here
        run_worker(spec, storage_url, False, worker)
    except BaseException as e:  # KeyboardInterrupt included: the parent decides what it means
        result = e
        if not isinstance(e, (KeyboardInterrupt, SearcherError)):  # a bug: its traceback is in this process
            import traceback

            traceback.print_exc()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # done: a late Ctrl-C must not cut the report short
    with contextlib.suppress(Exception):
        try:
            conn.send(result)
        except Exception:  # an exception that does not pickle
            conn.send(RuntimeError(f"worker {worker}: {type(result).__name__}: {result}"))
    conn.close()


def _create_study(spec: StudySpec, storage_url: str) -> optuna.Study:
    if storage_url.startswith("journal:"):  # Optuna's writer fails with a traceback (its lock file, its append)
        from .export import _file_of

        path = _file_of(storage_url)
        assert path is not None
        for what, p in (("folder", path.parent), ("file", path)):
            if p.exists() and not os.access(p, os.W_OK):
                raise StorageError(f"cannot write the journal {path}: its {what} is read-only; copy the journal to a "
                                   "writable folder and pass --storage journal:COPY")
    storage = open_storage(storage_url, write_ahead=True)
    study = optuna.create_study(
        study_name=spec.name,
        storage=storage,
        load_if_exists=True,
        directions=[OBJECTIVES[o] for o in spec.objectives],  # type: ignore[misc]
        sampler=_sampler(spec.sampler, spec.seed, len(spec.objectives)),
    )
    directions = [
        optuna.study.StudyDirection.MAXIMIZE if OBJECTIVES[o] == "maximize" else optuna.study.StudyDirection.MINIMIZE
        for o in spec.objectives
    ]
    names = study.metric_names  # the trials' values are in this order: another order would mix them up
    if list(study.directions) != directions or (names is not None and list(names) != list(spec.objectives)):
        was = f" ({','.join(names)})" if names else ""
        raise StorageError(
            f"study {spec.name!r} in {_redact(storage_url)} was created with other objectives{was}, not "
            f"{','.join(spec.objectives)}; use another --out or --storage, or the objectives it was created with"
        )
    return study


def _check_run_dir_study(spec: StudySpec, storage_url: str, out: Path) -> None:
    """A run directory holds one study: another spec's (another name) would be a second study in its storage,
    whose exports replace the first one's, and export and report could no longer tell which to read. With
    ``--storage`` elsewhere, the directory's own study file and its exported configs tell whose it is."""
    from .export import _file_of, other_studies, run_dir_storages

    urls = [storage_url] if not spec.storage else []
    urls += [u for u in run_dir_storages(out) if u != storage_url]
    for url in urls:
        path = _file_of(url)
        if path is None or not path.is_file() or path.stat().st_size == 0:
            continue
        try:
            names = optuna.get_all_study_names(open_storage(url))
        except SearcherError:
            if url == storage_url:
                raise
            continue  # the directory's own file, unreadable: the study runs elsewhere (--storage), and says so
        if names and spec.name not in names:
            raise ConfigError(f"{out} holds the study {names[0]!r}, not {spec.name!r} (a study is named by its "
                              "spec's 'name:' or file name); resume it with its own spec, or give this study another "
                              "--out")
    if others := other_studies(out / "configs", spec.name):  # (not a config: export's own check says so)
        raise ConfigError(f"{out} holds the exports of the study {others[0]!r}, not {spec.name!r}; give this study "
                          "another --out")


def _optimize_loop(
    spec: StudySpec,
    ctx: _Context,
    storage_url: str,
    progress: bool,
    worker: int = 0,
    announce: bool = True,
    study: optuna.Study | None = None,
) -> bool:
    """Run trials until the study has ``spec.trials`` candidates (or its timeout); whether a Ctrl-C stopped it."""
    study = study or _create_study(spec, storage_url)
    ctx = replace(ctx, space=_as_begun(ctx.space, study.user_attrs))  # a local worker of an old study
    # Every process's sampler starts from the seed: a resumed run, or a second worker, would draw the first run's
    # candidates again. They draw from (seed, worker, trials started so far) instead; a fresh run keeps the seed.
    started = sum(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False))
    if worker or started:
        import numpy as np

        seed = int(np.random.SeedSequence([spec.seed, worker, started]).generate_state(1)[0])
        study.sampler = _sampler(spec.sampler, seed, len(spec.objectives))
    _fail_dead_trials(study, storage_url, spec.trials)
    bar = _Progress(study, spec.trials, progress)
    try:
        with _graceful_sigint(study, announce) as pressed:
            if not _done(_finished(study), spec.trials) and not pressed["n"]:
                study.optimize(
                    _objective(ctx, shared=not storage_url.startswith("sqlite")),
                    n_trials=None if spec.timeout else spec.trials * DRAWS_PER_TRIAL,
                    timeout=spec.timeout,
                    callbacks=[bar],
                    catch=(NumericalError, MemoryError, RuntimeError),
                    gc_after_trial=False,
                )
    finally:
        bar.close()
    return pressed["n"] > 0


def optimize(spec: StudySpec | str | Path, out: str | Path | None = None, progress: bool = True) -> OptimizeResult:
    """Run (or resume) the study of ``spec`` (a :class:`StudySpec`, or a spec's path or shipped name) and
    re-evaluate its Pareto set on the test split."""
    from .export import _command, _remove_empty, _writable_dir, run_dir

    if isinstance(spec, str | Path):
        spec = StudySpec.from_yaml(spec)
    if not isinstance(spec, StudySpec):
        raise ConfigError(f"optimize takes a StudySpec (StudySpec.from_yaml(…)) or a spec's path, got {spec!r:.80}")
    if out is not None and not isinstance(out, str | Path) or out == "":
        raise ConfigError(f"out must be a folder's path, got {out!r} (None: runs/<study>)")

    out = run_dir(spec.name, out)

    created = _writable_dir(out)  # removed again when the study cannot start: nothing half-written
    try:
        storage_url = spec.storage or default_storage(out, spec.workers)
        if spec.workers > 1 and storage_url.startswith("sqlite"):
            raise ConfigError(
                "several workers cannot share an SQLite storage safely; use --storage journal:PATH or "
                "postgresql://… (or leave --storage out: several workers default to a journal file)"
            )
    except BaseException:
        _remove_empty(created)
        raise
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(_sqlite_lock(storage_url, out))  # a busy study is refused before the model loads
            _check_run_dir_study(spec, storage_url, out)
            ctx, splits = _context(spec)
            study = _create_study(spec, storage_url)
            search_fp = splits["search"].fingerprint(ctx.search_images)
            _check_resume(study, ctx, spec, storage_url, search_fp)
            spec = ctx.spec  # its data resolved (absolute folders, the class order): what the study records
        except BaseException:
            if created:  # a new run directory goes, with the lock file just made in it
                (out / ".optimize.lock").unlink(missing_ok=True)
            _remove_empty(created)
            raise
        with experimental():
            study.set_metric_names(spec.objectives)
        if spec.early_stop and spec.sampler in ("nsga2", "gp"):
            log.warning(
                f"the {spec.sampler} sampler learns from complete trials only: a candidate stopped early teaches it "
                "nothing (TPE learns from them); set early_stop: false in the study spec to evaluate "
                "every candidate in full"
            )
        try:  # the settings the study is bound to, then its published recipes
            if study.user_attrs.get("budget_gflops") is None:  # a new study (_check_resume)
                study.set_user_attr(_PER_RECIPE, True)
            study.set_user_attr("spec", {k: _redact(v) if k == "storage" and v else v  # no password in the study
                                         for k, v in spec.to_dict().items() if k != "base_dir"})
            study.set_user_attr("command", _command())  # the configs' provenance.command, whoever exports them
            study.set_user_attr("budget_gflops", ctx.budget)
            study.set_user_attr("space", ctx.space.to_dict())  # its ranges and choices: the trials' draws
            study.set_user_attr("full_gflops", ctx.full_gflops)
            study.set_user_attr("search_images", ctx.search_images)
            study.set_user_attr("search_fingerprint", search_fp)
            test_fp = splits["test"].fingerprint(spec.test_images)
            if study.user_attrs.get("test_fingerprint", test_fp) != test_fp:  # other test images: measure again
                stale = [k for k, v in study.user_attrs.items() if k.startswith("test:") and v is not None]
                for k in stale:
                    study.set_user_attr(k, None)
                now = min(spec.test_images or math.inf, len(splits["test"]))
                log.warning(f"the test split is not the one this study was tested on (now {now} images"
                            + (f" of {spec.data['test']}" if spec.data.get("test") else "")
                            + f"): its {len(stale)} stored test results will be measured again")
            study.set_user_attr("test_fingerprint", test_fp)
            study.set_user_attr("model_source", ctx.source.describe())
            if spec.baselines:
                _fail_dead_trials(study, storage_url, spec.trials)  # a dead worker's recipe is queued again
                _enqueue_baselines(study, ctx)
                _requeue_interrupted_baselines(study)
                recipes = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("baseline")]
                waiting = sum(t.state == TrialState.WAITING for t in recipes)
                evaluated = _counts(_finished(study))[0]
                if waiting and evaluated + waiting > spec.trials:
                    # the search is compared with every published recipe: none is left waiting
                    log.warning(f"{spec.trials} trials leave {waiting} published recipe(s) unrun, and a study runs "
                                f"them all; running {evaluated + waiting}")
                    spec = replace(spec, trials=evaluated + waiting)
                    ctx = replace(ctx, spec=spec)
        except BaseException:
            if not study.get_trials(deepcopy=False):  # nothing queued: the next run may start it afresh
                study.set_user_attr("budget_gflops", None)
            raise
        t0 = time.perf_counter()
        if spec.workers > 1 and not _done(_finished(study), spec.trials):  # done: no worker to start (~5 s each)
            interrupted = _run_workers(spec, storage_url, study, progress)
        else:
            interrupted = _optimize_loop(spec, ctx, storage_url, progress, study=study)
        wall = time.perf_counter() - t0
    if interrupted and not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        # stopped before any trial finished (workers still starting, or the first trial failed): nothing to export
        raise KeyboardInterrupt("stopped before any trial finished; run the same command to start the study")
    done = _done(_finished(study), spec.trials)
    interrupted = interrupted and not done  # a press in the last trial: all done
    timed_out = not interrupted and not done and spec.timeout is not None
    untested = [t for t in pareto_trials(study) if test_result(study, t) is None]
    if untested and (progress or log.isEnabledFor(logging.INFO)):  # minutes at real scale: say what runs
        print(f"testing {len(untested)} Pareto-optimal config(s) on the test split "
              f"({min(spec.test_images or math.inf, len(splits['test']))} images)", file=sys.stderr, flush=True)
    pareto = evaluate_pareto(study, ctx, splits["test"], spec)
    stats = _stats(study, ctx, wall)
    evaluated = stats["trials"] - stats["repeats"] - stats["over_budget"]
    if not pareto and ctx.min_throughput is not None:
        speeds = [tp["img_s"] for t in _finished(study) if (tp := throughput_of(study, t))]
        if speeds and max(speeds) < ctx.min_throughput:
            log.warning(f"no candidate reached the throughput floor of {ctx.min_throughput:g} img/s (the fastest "
                        f"timed: {max(speeds):.4g} img/s); lower --min-throughput "
                        "(min_throughput in the spec) in a new study (--out)")
    if timed_out:
        log.warning(f"stopped by the timeout ({spec.timeout:g} s of trials) with {evaluated} of the {spec.trials} "
                    "candidates asked for evaluated; run the same command to go on")
    if evaluated < spec.trials and stats["trials"] >= DRAWS_PER_TRIAL * spec.trials:
        if stats["over_budget"] >= stats["repeats"]:
            why = (f"{stats['over_budget']} draws were over the budget. Per-block or per-layer draws "
                   "rarely meet a tight budget: use the budget-aware parametrisation (the default), narrow the ranges, "
                   "or raise the budget")
        else:
            why = ("the other draws repeated a candidate already evaluated. The space holds few candidates under "
                   "this budget, or the sampler keeps to one region of it; widen the space's ranges, or try "
                   "--sampler random")
        log.warning(
            f"stopped after {stats['trials']} draws ({DRAWS_PER_TRIAL} per trial asked for), with {evaluated} of the "
            f"{spec.trials} candidates asked for evaluated: {why}"
        )
    return OptimizeResult(study, out, ctx.budget, ctx.full_gflops, pareto, stats, ctx, splits["test"], interrupted,
                          timed_out)


_SAME_MODEL = ("name", "family", "sha256", "arch", "kwargs")  # of ModelSource.describe(); the checkpoint may move


_PER_RECIPE = "prop_attn_per_recipe"  # a study attribute: begun when a space without prop_attn meant each recipe's


def _as_begun(space: SearchSpace, attrs: Mapping[str, Any], begun: bool = False) -> SearchSpace:
    """``space`` as the study was begun with it, where they differ only by a default changed since: proportional
    attention was on for every reducer until 2026-12-07 (left out of a space, it is now each recipe's own, off
    for PiToMe), so a study begun before keeps it on. ``attrs``: the study's attributes (its recorded space, None
    before 2026-12-07; a study begun since 2026-12-08 is marked, and its space compared as it is: one begun with
    ``prop_attn: true`` and resumed without it was taken for an old one); ``begun``: the study has run before."""
    recorded = attrs.get("space")
    if space.prop_attn is None and not attrs.get(_PER_RECIPE):
        old = replace(space, prop_attn=(True,))
        if recorded == old.to_dict() or (begun and recorded is None):
            if begun and recorded is not None:  # given then, or the default: which, it cannot be told
                log.warning("this study was begun with prop_attn: true for every reducer (given, or the default "
                            "before 2026-12-07): kept; to search without it, start a new study (another --out)")
            return old
    return space


def _check_resume(study: optuna.Study, ctx: _Context, spec: StudySpec, storage_url: str, search_fp: str) -> None:
    """A study resumes under the budget, throughput floor, search split and model it was started with: its trials'
    feasibility, accuracy, baselines and front were measured under them, and mixing would put over-budget configs,
    or accuracies of another split, on the front. Trials, timeout, sampler, seed and workers may change."""
    before = study.user_attrs
    if before.get("budget_gflops") is None:  # a new study, or one whose start failed before any trial was queued
        return
    old_spec = before.get("spec", {})
    changes = []
    if written_as(spec.budget, before["budget_gflops"]):  # the budget as a summary printed it
        ctx.budget = before["budget_gflops"]
        ctx.spec = replace(ctx.spec, budget=old_spec.get("budget", ctx.spec.budget))  # recorded as it began
    if not math.isclose(before["budget_gflops"], ctx.budget, rel_tol=1e-9):
        digits = next(d for d in (4, 6, 8, 12, 17) if f"{before['budget_gflops']:.{d}g}" != f"{ctx.budget:.{d}g}")
        changes.append(
            f"a budget of {old_spec.get('budget')} ({before['budget_gflops']:.{digits}g} GFLOPs), not {spec.budget} "
            f"({ctx.budget:.{digits}g} GFLOPs)"
        )
    old_floor = parse_rate(old_spec["min_throughput"]) if old_spec.get("min_throughput") else None
    if old_floor != ctx.min_throughput:
        changes.append(
            f"a throughput floor of {old_spec.get('min_throughput') or 'none'}, not {spec.min_throughput or 'none'}"
        )
    old_images = before.get("search_images", ctx.search_images)  # each check only where the study recorded it
    old_data = old_spec.get("data", spec.data)
    if "search_fingerprint" in before:  # the images themselves (wherever they lie now), as the model sees them
        same = before["search_fingerprint"] == search_fp
    else:  # a study begun before 2026-12-07: its data spec as written
        same = old_data == spec.data
    if old_images != ctx.search_images:
        changes.append(f"a search split of {old_images} images, not {ctx.search_images}")
    elif not same and old_data in (spec.data, ctx.spec.data):
        changes.append("other search images under the same data spec (the images or their preprocessing changed)")
    elif not same:
        changes.append(f"the search split of data {old_data}, not {ctx.spec.data}")
    ctx.space = _as_begun(ctx.space, before, begun=True)
    old_space, space = before.get("space"), ctx.space.to_dict()
    if old_space is not None and old_space != space:  # recorded since 2026-12-07
        keys = sorted(k for k in {*old_space, *space} if old_space.get(k) != space.get(k))
        changes.append("another search space (" + "; ".join(
            f"{k}: {old_space.get(k, 'not set')} then, {space.get(k, 'not set')} now" for k in keys) + ")")
    old_model, model = before.get("model_source", {}), ctx.source.describe()
    # a URL's weights had no sha256 recorded until 2026-12-07
    same = [k for k in _SAME_MODEL if k != "sha256" or "sha256" in old_model or "checkpoint" not in old_model]
    if old_model and any(old_model.get(k) != model.get(k) for k in same):

        def name(m: dict[str, Any]) -> str:
            return f"{m.get('name')}" + (f" (weights sha256 {m['sha256'][:12]}…)" if m.get("sha256") else "")

        if all(old_model.get(k) == model.get(k) for k in same if k != "sha256"):  # the weights' bytes changed
            from .models import download_hint

            where = f" of {model['checkpoint']}" if model.get("checkpoint") else ""
            def sha(m: dict[str, Any]) -> str:
                return f"sha256 {m['sha256'][:12]}…" if m.get("sha256") else "no file (timm's pretrained weights)"

            changes.append(f"other weights{where}: {sha(old_model)} then, {sha(model)} now")
            if old_model.get("checkpoint") == model.get("checkpoint"):  # a URL's download changed
                changes[-1] += download_hint(model.get("checkpoint", ""))
        else:
            changes.append(f"the model {name(old_model)}, not {name(model)}")
    if changes:
        raise ConfigError(
            f"study {spec.name!r} in {_redact(storage_url)} was run with {'; '.join(changes)}: resume it with "
            "the settings it was started with, or start a new study with another --out (or --storage)"
        )


def test_result(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> dict[str, Any] | None:
    """The test-split accuracy of a trial (``{"top1", "top5", "images"}``), once the Pareto set was re-evaluated."""
    return study.user_attrs.get(f"test:{trial.number}")


def evaluate_test(
    study: optuna.Study, ctx: _Context, trial: optuna.trial.FrozenTrial, test_split: Split, spec: StudySpec
) -> dict[str, Any]:
    """A trial's test-split result, evaluated once and kept in the study's ``test:<trial>`` attribute (a finished
    trial cannot be updated)."""
    test = test_result(study, trial)
    if test is None:
        cand = candidate_of(trial)
        model = ctx.source.build(cand.arch, cand.schedule)
        acc = evaluate(model, test_split, spec.batch_size, limit=spec.test_images, lock=device_lock())
        test = {"top1": acc.top1, "top5": acc.top5, "images": acc.n}
        study.set_user_attr(f"test:{trial.number}", test)
    return test


def throughput_of(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> dict[str, Any] | None:
    """A trial's measured throughput (:class:`~searcher.cost.throughput.Throughput` as a dict), or None: timed in
    the trial when throughput is an objective or a constraint (then unless the front dominated it), else once the trial
    is on the final Pareto front."""
    return trial.user_attrs.get("throughput") or study.user_attrs.get(f"throughput:{trial.number}")


def _timed(trial: optuna.Trial, ctx: _Context, cand: Candidate) -> Throughput:
    """:func:`_measure`, recorded in the trial with the seconds it took (``throughput_s``) and those it waited for
    other processes' use of the device first (``wait_s``)."""
    t, waited = time.perf_counter(), device_lock().waited
    tp = _measure(ctx, cand)
    waited = device_lock().waited - waited
    trial.set_user_attr("throughput", tp.to_dict())
    trial.set_user_attr("throughput_s", time.perf_counter() - t - waited)
    _waited(trial, waited)
    return tp


def _waited(trial: optuna.Trial, seconds: float) -> None:
    """Add ``seconds`` of waiting for the device lock to the trial's ``wait_s`` (neither work nor overhead); no
    storage write when it did not wait."""
    if seconds > 0:
        trial.set_user_attr("wait_s", trial.user_attrs.get("wait_s", 0.0) + seconds)


def _measure(ctx: _Context, cand: Candidate) -> Throughput:
    """The candidate's throughput, timed alone on the device: other processes of this host (workers of this or
    another study) pause their evaluation meanwhile (:class:`~searcher.cost.throughput.DeviceLock`)."""
    model = ctx.source.build(cand.arch, cand.schedule, compact=True)
    with device_lock().exclusive():
        return measure(model, ctx.spec.throughput_batch, ctx.source.input_shape, repeats=ctx.spec.throughput_repeats)


def evaluate_pareto(study: optuna.Study, ctx: _Context, test_split: Split, spec: StudySpec) -> list[dict[str, Any]]:
    """Re-evaluate every Pareto-optimal trial on the test split (stored in the study's ``test:<trial>``
    attribute), time those the search did not (``throughput:<trial>``), and return one row per trial."""
    rows = []
    for t in pareto_trials(study):
        cand = candidate_of(t)
        test_top1 = evaluate_test(study, ctx, t, test_split, spec)["top1"]
        tp = throughput_of(study, t)
        if tp is None:
            tp = _measure(ctx, cand).to_dict()
            study.set_user_attr(f"throughput:{t.number}", tp)
        rows.append(
            {
                "trial": t.number,
                "reducer": cand.reducer,
                "baseline": t.user_attrs.get("baseline", ""),
                "tokens": t.user_attrs.get("tokens"),
                "search_top1": t.user_attrs["top1"],
                "test_top1": test_top1,
                "gflops": t.user_attrs["gflops"],
                "img_s": tp["img_s"],
                "arch": cand.arch,
            }
        )
    return rows


def _stats(study: optuna.Study, ctx: _Context, wall: float) -> dict[str, Any]:
    """The study's counts, from its storage (every run and worker of it, not only this process)."""
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in FINISHED]
    feasible = [  # a repeat is feasible: only a candidate under the budget is looked up among earlier ones
        t for t in finished if is_repeat(t) or (
            not ctx.over_budget(t.user_attrs.get("gflops", math.inf)) and "infeasible" not in t.user_attrs)
    ]
    # under a throughput floor, a candidate never timed (dominated, or stopped early) may be on either side of it
    untimed = [t for t in feasible if not is_repeat(t) and throughput_of(study, t) is None
               ] if ctx.min_throughput is not None else []
    judged = len(finished) - len(untimed)
    work = sum(t.user_attrs.get(k, 0.0) for t in finished for k in ("eval_s", "throughput_s"))
    waited = sum(t.user_attrs.get("wait_s", 0.0) for t in finished)  # for other processes' timings: not overhead
    trial_wall = sum(
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in finished
        if t.datetime_complete and t.datetime_start
    )
    return {
        "trials": len(finished),
        "repeats": sum(map(is_repeat, finished)),  # draws of a candidate already evaluated
        "over_budget": sum(map(is_over_budget, finished)),  # draws over the budget, recorded unevaluated
        "complete": sum(t.state == TrialState.COMPLETE for t in finished),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "feasible_share": (len(feasible) - len(untimed)) / max(judged, 1),  # of the trials with a verdict
        "untimed": len(untimed),
        **early_stop_savings(finished, ctx.search_images),  # repeats end as pruned too, with no evaluation
        "overhead_share": max(0.0, 1 - (work + waited) / trial_wall) if trial_wall else None,
        "wait_share": waited / trial_wall if trial_wall else None,  # waiting for the device lock
        "trial_wall_s": trial_wall,  # summed over the study's finished trials, whichever run they came from
        "wall_s": wall,  # of this call
    }
