"""Helpers of the reliability suite: the tiny study that runs in seconds, running ``searcher`` in a subprocess,
reading a study's storage while something else writes it.

The tiny study: a 4-block timm ViT (embed 32) on a synthetic Fashion-MNIST (4000 + 300 images), 200 search and
100 test images, ToMe and RAPID; one trial takes about a second on one core. Subprocesses run with one torch
thread (``OMP_NUM_THREADS=1``): on a shared 2-core machine, two threads per process fight the other processes
for the cores and every matmul gets many times slower.
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

TINY = dict(img_size=32, patch_size=4, in_chans=1, num_classes=10, embed_dim=32, depth=4, num_heads=2)
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
IDX_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: magic 0x000008<ndim>, one big-endian uint32 per dimension, the data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_fashion(d: Path, n_train: int = 4000, n_test: int = 300) -> Path:
    """A synthetic Fashion-MNIST (balanced random labels, random images) as the four IDX files in ``d``."""
    rng = np.random.default_rng(0)
    d.mkdir(parents=True, exist_ok=True)
    for part, n in (("train", n_train), ("test", n_test)):
        labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        (d / IDX_STEMS[f"{part}_images"]).write_bytes(idx_bytes(images))
        (d / IDX_STEMS[f"{part}_labels"]).write_bytes(idx_bytes(labels))
    return d


def tiny_spec_dict(root: Path, **changes: Any) -> dict[str, Any]:
    """The tiny study's spec (data and checkpoint under ``root``, as the ``tiny`` fixture writes them)."""
    return {
        "name": "tiny",
        "model": "vit_tiny_patch16_224",
        "model_kwargs": TINY,
        "checkpoint": str(root / "tiny.pth"),
        "data": {"kind": "fashion-mnist", "dir": str(root / "idx")},
        "space": {"reducers": ["tome", "rapid"], "schedule": {"r": {"low": 0, "high": 32}}},
        "budget": "60%",
        "trials": 8,
        "search_images": 200,
        "test_images": 100,
        "batch_size": 100,
        "chunk": 100,
        "throughput_batch": 8,
        "throughput_repeats": 1,
        "seed": 0,
        **changes,
    }


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a ``searcher`` subprocess: this session's cache, one torch thread, no colour."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **extra}
    env.pop("SEARCHER_DATA", None)
    return env


def searcher_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "searcher.cli", *args]


def run_cli(args: Sequence[str], cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """``searcher ARGS`` in a subprocess; returns the completed process (text stdout/stderr)."""
    return subprocess.run(
        searcher_cmd(*args), cwd=cwd, env=cli_env(**env), capture_output=True, text=True, timeout=timeout
    )


@contextlib.contextmanager
def start_cli(
    args: Sequence[str], cwd: Path, log: Path, *, new_session: bool = False, **env: str
) -> Iterator[subprocess.Popen]:
    """``searcher ARGS`` in the background for the ``with`` block, stdout and stderr into ``log`` (a file: a pipe
    could fill up). ``new_session``: in a session and process group of its own (``os.killpg(proc.pid, sig)`` then
    signals what a terminal's Ctrl-C would, and nothing of the test's). On the way out a process still running (a
    failed assertion) is killed, its whole group with ``new_session``, and reaped."""
    with open(log, "w") as f:
        proc = subprocess.Popen(
            searcher_cmd(*args), cwd=cwd, env=cli_env(**env), stdout=f, stderr=subprocess.STDOUT, text=True,
            start_new_session=new_session,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                if new_session:
                    os.killpg(proc.pid, signal.SIGKILL)
                else:
                    proc.kill()
                proc.wait()


def trials_of(url: str, name: str = "tiny") -> list[optuna.trial.FrozenTrial]:
    """The trials of a study, read through a fresh storage (SQLite URLs get a generous busy timeout)."""
    kwargs: dict[str, Any] = {"engine_kwargs": {"connect_args": {"timeout": 60}}} if url.startswith("sqlite") else {}
    if url.startswith("journal:"):
        from searcher.study import open_storage

        storage: Any = open_storage(url)
    else:
        storage = optuna.storages.RDBStorage(url, skip_compatibility_check=True, **kwargs)
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    finally:
        if hasattr(storage, "engine"):
            storage.engine.dispose()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, proc: subprocess.Popen | None = None,
             log: Path | None = None, every: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` (and the log) on timeout or when
    ``proc`` ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception:  # the storage is being created, or is briefly busy
            value = None
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            text = log.read_text() if log is not None and log.exists() else ""
            pytest.fail(f"the process ended (rc {proc.returncode}) before {what}:\n{text[-3000:]}")
        time.sleep(every)
    text = log.read_text() if log is not None and log.exists() else ""
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}:\n{text[-3000:]}")


def fingerprint(t: optuna.trial.FrozenTrial) -> tuple:
    """What must not change about a finished trial: its number, state, parameters, values and user attributes."""
    return (t.number, t.state.name, sorted(t.params.items()), t.values, sorted(_plain(t.user_attrs).items()))


def _plain(d: Mapping[str, Any]) -> dict[str, str]:
    return {k: repr(v) for k, v in d.items()}


# user attributes every finished trial carries (feasible ones also carry the rest)
BASE_ATTRS = {"candidate", "gflops", "tokens", "feasible"}
EVAL_ATTRS = {"top1", "top5", "images_evaluated", "eval_s", "search_s"}


def check_complete_attrs(t: optuna.trial.FrozenTrial) -> None:
    """A COMPLETE trial holds everything export and report read: the candidate, its costs, and (when it was
    evaluated) its accuracy, matching the stored objective values."""
    missing = BASE_ATTRS - set(t.user_attrs)
    assert not missing, f"trial {t.number} lacks user attributes {sorted(missing)}"
    if t.user_attrs["feasible"]:
        missing = EVAL_ATTRS - set(t.user_attrs)
        assert not missing, f"trial {t.number} lacks user attributes {sorted(missing)}"
        assert t.values is not None and t.values[0] == t.user_attrs["top1"]
    else:
        assert "infeasible" in t.user_attrs or "throughput" in t.user_attrs


def _sqlite_query(db: Path, sql: str) -> list[tuple]:
    import sqlite3

    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=60)
    try:
        return list(con.execute(sql))
    except sqlite3.OperationalError:  # the tables are being created
        return []
    finally:
        con.close()


def sqlite_states(db: Path) -> dict[int, str]:
    """``{trial number: state}`` of an Optuna SQLite file, read-only and cheap (for polling while a study runs)."""
    return dict(_sqlite_query(db, "SELECT number, state FROM trials"))


def sqlite_heartbeats(db: Path) -> set[int]:
    """Numbers of the trials that have recorded a heartbeat (their worker's heartbeat thread is running)."""
    rows = _sqlite_query(db, "SELECT t.number FROM trials t JOIN trial_heartbeats h ON h.trial_id = t.trial_id")
    return {n for (n,) in rows}


# ------------------------------------------------------------------------------------------------ PostgreSQL
def postgres_bin() -> Path | None:
    """The directory of Debian's PostgreSQL server programs (``initdb``, ``pg_ctl``), or None."""
    import glob
    import shutil

    found = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[::-1]), None)
    return Path(found).resolve().parent if found else None


class PostgresServer:
    """A throw-away PostgreSQL server on a free loopback port, in a fresh data directory (trust auth, no fsync).

    Started as the ``postgres`` user when running as root (the server refuses to run as root)."""

    def __init__(self, bin_dir: Path) -> None:
        import socket
        import tempfile

        self.bin = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="searcher-pg-"))
        self.data, self.log = self.dir / "data", self.dir / "server.log"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._as: list[str] = []
        if os.geteuid() == 0:
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            os.chmod(self.dir, 0o700)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str, timeout: float = 300) -> None:
        proc = subprocess.run([*self._as, *args], capture_output=True, text=True, timeout=timeout)
        if proc.returncode:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {proc.stdout}{proc.stderr}{log}")

    def start(self) -> PostgresServer:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "searcher", "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t", "300",
                  "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://searcher@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=searcher dbname=postgres",
                             autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        import shutil

        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=120)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def die_in_a_trial(spec: Any, storage_url: str, worker: int, *args: Any) -> None:
    """A worker's main (``searcher.study._worker_main``) whose worker 0 starts a trial, beats once and is killed
    (``kill -9``) in it; the others run as searcher's workers do."""
    import optuna

    from searcher import study as study_module

    if worker:
        return study_module._worker_main(spec, storage_url, worker, *args)
    storage = study_module.open_storage(storage_url)
    trial = optuna.load_study(study_name=spec.name, storage=storage).ask()
    storage.record_heartbeat(trial._trial_id)
    os.kill(os.getpid(), signal.SIGKILL)


def die_at_once(spec: Any, storage_url: str, worker: int, *args: Any) -> None:
    """A worker's main (``searcher.study._worker_main``) that dies at once: worker 0 killed (``kill -9``), the others
    exiting with code 9."""
    if worker == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(9)
