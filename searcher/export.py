"""What users take away from a study: versioned JSON configs of the Pareto set, and tables.

A config holds the model source (timm name, embedded model, or AutoFormer checkpoint with its sha256), the
subnet, the schedule, the metrics with the device they were measured on, provenance (study, trial, searcher,
torch and timm versions, command), and a *check*: the logits of the rebuilt model on a seeded random input, so
whoever loads the config (``searcher.load_config``) can verify they run the same network. Alongside the configs,
``trials.csv`` lists every trial, feasible or not, and ``pareto.csv`` the Pareto set.

Writes are atomic as a whole: everything is computed first, written to temporary files next to the targets,
then renamed into place. ``configs/`` is replaced, so it always holds exactly the current Pareto set; a failure
leaves the previous export untouched and no temporary file behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from .data import atomic_write_bytes
from .deploy import CHECK_INPUT, CONFIG_VERSION, check_input
from .errors import ConfigError, SearcherError, StorageError

__all__ = [
    "CONFIG_VERSION",
    "CHECK_INPUT",
    "ExportResult",
    "atomic_write_text",
    "check_input",
    "config_name",
    "config_of",
    "export_command",
    "export_run",
    "export_study",
    "export_text",
    "find_storage",
    "open_study",
    "pareto_table",
    "study_target",
    "trials_frame",
]

log = logging.getLogger(__name__)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: readers see the old or the new file."""
    atomic_write_bytes(Path(path), text.encode())


# ---------------------------------------------------------------------------------------------- finding a study
def _file_of(url: str) -> Path | None:
    """The file behind a file-backed storage URL (SQLite, journal), or None for servers and in-memory SQLite."""
    if url.startswith("journal:"):
        return Path(url[len("journal:") :])
    if url.startswith("sqlite") and ":///" in url:  # sqlite:///PATH, sqlite+pysqlite:///PATH
        path = url.split(":///", 1)[1].split("?", 1)[0]
        return None if path in ("", ":memory:") else Path(path)
    return None


def run_dir_storages(out: Path) -> tuple[str, str]:
    """The storage URLs ``optimize`` writes in a run directory: a journal file (several workers) or SQLite."""
    return f"journal:{out / 'study.journal'}", f"sqlite:///{out / 'study.db'}"


def find_storage(out: str | Path | None = None, storage: str | None = None) -> str:
    """The storage URL of a study: ``storage`` when given, else the run directory's ``study.journal`` or
    ``study.db`` (what ``searcher optimize --out DIR`` writes). A file-backed storage must exist: opening a
    missing SQLite file would create an empty one."""
    if storage:
        path = _file_of(storage)
        if path is not None and not path.is_file():
            raise StorageError(
                f"storage {storage} does not exist ({path} is not a file); check --storage, or run "
                "'searcher optimize' first"
            )
        return _not_empty(storage)
    if out is None:
        raise ConfigError("no study given: pass --out DIR (a run directory) or --study NAME --storage URL")
    out = Path(out)
    for url in run_dir_storages(out):
        path = _file_of(url)
        if path is not None and path.is_file():
            return _not_empty(url)
    where = ("the directory does not exist" if not out.exists() else "it is a file, not a run directory"
             if not out.is_dir() else "the directory holds neither study.db nor study.journal")
    raise StorageError(
        f"no study in {out}: {where}; run 'searcher optimize --study SPEC --out {out}' first, "
        "or pass --storage URL"
    )


def _not_empty(url: str) -> str:
    """``url``, unless it is an empty SQLite file: opening it writes Optuna's tables into it (a reader changed the
    file), and then it holds no study to name."""
    path = _file_of(url)
    if url.startswith("sqlite") and path is not None and path.is_file() and path.stat().st_size == 0:
        raise StorageError(f"{path} is empty, no study database (a copy cut short?); run 'searcher optimize' to "
                           "start the study, or restore the file")
    return url


def study_target(
    study: str | None, out: str | Path | None = None, storage: str | None = None
) -> tuple[str | None, Path | None, str | None]:
    """``(name, out, storage)`` from the command line. ``--study`` is a study name, or, as for ``optimize``, a
    study spec YAML (then the name is the spec's, and the storage the spec's). Without ``--out`` and
    ``--storage``, the run directory is ``optimize``'s default, ``runs/<name>``."""
    if study and study.endswith((".yaml", ".yml")):
        from .study import StudySpec

        spec = StudySpec.from_yaml(study)
        study, storage = spec.name, storage or spec.storage
    if out is None and storage is None and study:
        out = run_dir(study)
    return study, Path(out) if out is not None else None, storage


def run_dir(study_name: str, out: str | Path | None = None) -> Path:
    """The run directory of a study: ``out``, by default ``runs/<study>``."""
    return Path(out) if out is not None else Path("runs") / study_name


def open_study(study_name: str | None, out: str | Path | None = None, storage: str | None = None) -> optuna.Study:
    """Load an existing study from ``--study NAME --storage URL`` or ``--out DIR`` (see :func:`study_target` and
    :func:`find_storage`); ``study_name`` may be None when the storage holds one study."""
    from .study import load_study

    study_name, out, storage = study_target(study_name, out, storage)
    url = find_storage(out, storage)
    with _quiet_optuna():
        return load_study(study_name, url)


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna logs "Using an existing study…" at INFO; export and report only read."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


# ------------------------------------------------------------------------------------------------ one config
def _versions() -> dict[str, str]:
    import timm
    import torch

    from . import __version__

    return {
        "searcher": __version__,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "optuna": optuna.__version__,
    }


def _command() -> str:
    """The command line of this process: ``searcher …``, or the Python program that called the library; storage
    passwords masked (configs are shared)."""
    from .study import _redact

    if Path(sys.argv[0]).name == "searcher":
        return _redact(" ".join(["searcher", *sys.argv[1:]]))
    return _redact(" ".join(["python", *sys.argv]))


def config_of(
    study: optuna.Study, trial: FrozenTrial, check: dict[str, Any] | None = None, command: str | None = None
) -> dict[str, Any]:
    """The exported config of one trial (README, "Deploy"); ``check`` from :func:`_check_of`."""
    from .study import _redact, test_result, throughput_of

    cand = trial.user_attrs["candidate"]
    spec = study.user_attrs.get("spec", {})
    test = test_result(study, trial) or {}
    return {
        "version": CONFIG_VERSION,
        "model": study.user_attrs.get("model_source", {"name": spec.get("model")}),
        "reducer": cand["reducer"],
        "arch": cand.get("arch"),
        "schedule": cand["schedule"],
        "metrics": {
            "search_top1": trial.user_attrs.get("top1"),
            "search_top5": trial.user_attrs.get("top5"),
            "search_images": trial.user_attrs.get("images_evaluated"),
            "test_top1": test.get("top1"),
            "test_top5": test.get("top5"),
            "test_images": test.get("images"),
            "gflops": trial.user_attrs.get("gflops"),
            "full_gflops": study.user_attrs.get("full_gflops"),
            "tokens": trial.user_attrs.get("tokens"),
            "throughput": throughput_of(study, trial),  # img_s with device, batch_size, dtype, torch
            "data": spec.get("data"),
        },
        "check": check,
        "provenance": {
            "study": study.study_name,
            "trial": trial.number,
            "baseline": trial.user_attrs.get("baseline"),
            "budget_gflops": study.user_attrs.get("budget_gflops"),
            **_versions(),
            "command": _redact(study.user_attrs.get("command", command or _command())),
            "exported_by": _redact(command or _command()),
            "exported": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }


def _g(gflops: float, digits: int = 3) -> str:
    return f"{gflops:.{digits}g}"


def config_name(config: Mapping[str, Any], digits: int = 3) -> str:
    """A stable name that says what the config is: ``<model>.<reducer>.<GFLOPs>g.json``, e.g.
    ``deit_small_patch16_224.rapid.2.9g.json``."""
    model = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(config["model"].get("name", "model")))
    reducer = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(config["reducer"]))
    return f"{model}.{reducer}.{_g(config['metrics']['gflops'], digits)}g.json"


def _unique_names(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """:func:`config_name` for each config; configs whose names collide all get their trial number
    (``….t12.json``), so a name never depends on the order of the Pareto set."""
    names = [config_name(c) for c in configs]
    clashes = {n for n in names if names.count(n) > 1}
    return [
        n.removesuffix(".json") + f".t{c['provenance']['trial']}.json" if n in clashes else n
        for n, c in zip(names, configs, strict=True)
    ]


# ---------------------------------------------------------------------------------------------- logits check
class _Checker:
    """Rebuilds the Pareto configs' models as ``deploy`` does (:func:`searcher.deploy.open_source` and
    :func:`~searcher.deploy.build_model`) and records their logits on the check input
    (:func:`~searcher.deploy.record_check`).

    The model is opened once, on first use. When it cannot be rebuilt (weights moved, or changed since the
    study ran: their sha256 differs), configs carry ``"check": null`` and the reason is reported once."""

    def __init__(self, study: optuna.Study) -> None:
        self.study = study
        self.source: Any = None
        self.problem: str | None = None

    def _open(self) -> Any:
        from .deploy import open_source

        src = dict(self.study.user_attrs.get("model_source") or {})
        spec = self.study.user_attrs.get("spec") or {}
        src["name"] = src.get("name") or spec.get("model")
        if not src["name"]:
            raise ConfigError("the study records no model")
        with _quiet_optuna():
            return open_source(src)

    def __call__(self, trial: FrozenTrial) -> dict[str, Any] | None:
        from .deploy import build_model, record_check

        if self.problem is not None:
            return None
        try:
            if self.source is None:
                self.source = self._open()
            cand = trial.user_attrs["candidate"]
            model = build_model(self.source, cand.get("arch"), cand["schedule"])
            return record_check(model, self.source.input_shape)
        except (SearcherError, OSError) as e:
            self.problem = str(e)
            return None


# ------------------------------------------------------------------------------------------------------ tables
def trials_frame(study: optuna.Study, trials: list[FrozenTrial] | None = None) -> pd.DataFrame:
    """Every trial (of ``trials``, a snapshot, when given), feasible or not, with its parameters and metrics."""
    from .study import test_result, throughput_of

    floor = (study.user_attrs.get("spec") or {}).get("min_throughput") is not None
    rows = []
    for t in study.get_trials(deepcopy=False) if trials is None else trials:
        ua = t.user_attrs
        tp = throughput_of(study, t) or {}
        verdict = (t.state == TrialState.COMPLETE and "duplicate_of" not in ua
                   or t.state == TrialState.PRUNED and "top1_partial" in ua)
        # under a throughput floor, an untimed candidate (stopped early, or dominated) may be on either side of it
        feasible = ua.get("feasible") if verdict and not (floor and ua.get("feasible") and not tp) else None
        cand = ua.get("candidate") or {}
        test = test_result(study, t) or {}
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name,
                "duplicate_of": ua.get("duplicate_of"),  # a repeated draw: this trial's result is that one's
                "reducer": cand.get("reducer", t.params.get("reducer")),
                "baseline": ua.get("baseline", ""),
                # blank where no verdict stands: waiting, running, failed, repeated (the objective sets it early)
                "feasible": feasible,
                "search_top1": ua.get("top1"),
                "search_top5": ua.get("top5"),
                "test_top1": test.get("top1"),
                "test_top5": test.get("top5"),
                "gflops": ua.get("gflops"),
                "img_s": tp.get("img_s"),
                "device": tp.get("device"),
                "batch_size": tp.get("batch_size"),
                "dtype": tp.get("dtype"),
                "tokens": json.dumps(ua.get("tokens")) if ua.get("tokens") else None,
                "arch": json.dumps(cand.get("arch")) if cand.get("arch") else None,
                "images_evaluated": ua.get("images_evaluated"),
                "top1_partial": ua.get("top1_partial"),  # stopped early: the search top-1 over images_evaluated
                "infeasible": ua.get("infeasible"),
                "not_timed": ua.get("not_timed"),  # under a throughput floor: dominated, so its speed decides nothing
                "fail_reason": ua.get("fail_reason"),
                # a dead worker's trial ended unseen: its end is when a later run found it (minutes on)
                "duration_s": t.duration.total_seconds() if t.duration is not None
                and not str(ua.get("fail_reason", "")).startswith("worker died") else None,
                "wait_s": ua.get("wait_s"),  # of duration_s: waiting while another process timed a model
                **{f"param_{k}": v for k, v in t.params.items()},
            }
        )
    frame = pd.DataFrame(rows)
    for column in ("duplicate_of", "batch_size", "images_evaluated"):  # integers, blank where missing (not 12.0)
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    if "feasible" in frame:
        frame["feasible"] = frame["feasible"].astype("boolean")
    return frame


def subnets_differ(archs: Iterable[Mapping[str, Any] | None]) -> bool:
    """Whether rows hold AutoFormer subnets of more than one shape (a joint study's rows that read alike but for
    them; a fixed subnet's are all one, and need no column)."""
    return len({json.dumps(a, sort_keys=True) for a in archs if a}) > 1


def arch_text(arch: Mapping[str, Any] | None) -> str:
    """An AutoFormer subnet in one line (:meth:`SubnetConfig.text`); "" for none."""
    from .models.autoformer_space import SubnetConfig

    return SubnetConfig.from_dict(dict(arch)).text() if arch else ""


def pareto_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The Pareto set as a plain-text table (pandas)."""
    if isinstance(rows, str | bytes) or not all(isinstance(r, Mapping) and "tokens" in r for r in rows):
        raise ConfigError("pareto_table takes the rows of optimize's result.pareto (dicts with trial, reducer, "
                          f"tokens, …), got {str(rows)[:80]!r}")
    if not rows:
        return "(no feasible trial)"
    df = pd.DataFrame(rows)
    df["tokens"] = df["tokens"].map(lambda v: "-".join(map(str, v)) if isinstance(v, list) else v)
    subnets = "arch" in df and subnets_differ(df["arch"])
    if subnets:
        df["arch"] = df["arch"].map(arch_text)
    cols = [c for c in ("trial", "reducer", "baseline", "arch", "tokens", "search_top1", "test_top1", "gflops", "img_s")
            if c in df and (c != "arch" or subnets)]
    df = df[cols].copy()
    for c in cols:
        if df[c].isna().all():  # a column of None alone is printed "None" whatever na_rep says
            df[c] = "–"
    return df.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="–")


# ------------------------------------------------------------------------------------------------------ export
@dataclass
class ExportResult:
    """What an export wrote and what a user should know about the study it came from."""

    study: str
    out: Path
    files: list[Path]  # configs first (by GFLOPs), then trials.csv and pareto.csv
    pareto: list[dict[str, Any]]  # one row per Pareto-optimal trial, with its config file name
    states: dict[str, int]  # trials per state (COMPLETE, PRUNED, RUNNING, FAIL, WAITING)
    warnings: list[str] = field(default_factory=list)
    abandoned: bool = False  # its running trials belong to no live process (searcher.study.abandoned_trials)

    @property
    def running(self) -> int:
        return self.states.get("RUNNING", 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "out": str(self.out),
            "trials": sum(self.states.values()),
            "states": self.states,
            "running": self.running,
            "abandoned": self.abandoned,
            "pareto": self.pareto,
            "files": [str(f) for f in self.files],
            "warnings": self.warnings,
        }


def _writable_dir(out: Path) -> list[Path]:
    """Create ``out`` (returning the directories created, to remove on failure) and check it can be written."""
    created = []
    for d in reversed([out, *out.parents]):
        if not d.exists():
            created.append(d)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        _remove_empty(created)
        raise ConfigError(f"cannot write to {out}: {e.strerror or e}; choose a writable --out") from e
    return created


def check_replaceable(out: Path, study_name: str | None = None) -> None:
    """What an export replaces must be an earlier export's, of the same study (``study_name``, when given):
    ``configs/`` holding its configs only, and the two CSV files (anything else there is the user's, or another
    study's results, and would be lost)."""
    for name in ("trials.csv", "pareto.csv"):
        if (out / name).is_dir():
            raise ConfigError(f"{out / name} is a directory; each export replaces that file: move it away, or export "
                              "to another --out")
    configs = out / "configs"
    if configs.is_dir():  # dotfiles (.DS_Store) go with the directory; anything else must be an exported config
        foreign = [p.name for p in configs.iterdir() if not p.name.startswith(".") and not _is_config(p)]
    else:
        foreign = ["(a file, not a directory)"] if configs.exists() else []
    if foreign:
        raise ConfigError(f"{configs} holds {', '.join(sorted(foreign)[:3])}, which is not an exported config; each "
                          "export replaces configs/ with the Pareto set's: move it away, or export to another --out")
    if study_name is not None and (others := other_studies(configs, study_name)):
        raise ConfigError(f"{configs} holds the configs of study {others[0]!r}, not of {study_name!r}; each export "
                          "replaces configs/ and the CSV files with its study's: export to another --out")


def _is_config(path: Path) -> bool:
    """Whether ``path`` is a config an export wrote (a user's own JSON there was deleted until 2026-12-07)."""
    return _provenance(path) is not None


def _provenance(path: Path) -> dict[str, Any] | None:
    """An exported config's ``provenance``; None for anything else."""
    if path.suffix != ".json" or not path.is_file():
        return None
    try:
        d = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    ok = isinstance(d, dict) and "version" in d and isinstance(d.get("provenance"), dict)
    return d["provenance"] if ok else None


def other_studies(configs: Path, study_name: str) -> list[str]:
    """The studies other than ``study_name`` whose exported configs lie in ``configs`` (until 2026-12-07 a study's
    export replaced another's)."""
    names = {(_provenance(p) or {}).get("study") for p in configs.glob("*.json")}
    return sorted(n for n in names if isinstance(n, str) and n != study_name)


_LEFTOVER = re.compile(r"\.(configs|trials\.csv|pareto\.csv)(\.old)?\.(\d+)\.tmp")


def _sweep(out: Path, min_age_s: float = 600.0) -> None:
    """Remove what an export killed while writing left in ``out``: its temporary files, and its backups, except
    one whose file is missing (killed mid-swap), which is put back. Only leftovers of a process gone from this
    machine, older than ``min_age_s`` (an export writes them for seconds; one on another machine sharing the folder
    cannot be judged by its pid)."""
    now = time.time()
    for path in out.glob(".*.tmp"):
        m = _LEFTOVER.fullmatch(path.name)
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to remove: the export goes on
            if m is None or _alive(int(m.group(3))) or now - path.lstat().st_mtime < min_age_s:
                continue
            dest = out / m.group(1)
            if m.group(2) and not (dest.exists() or dest.is_symlink()):
                os.replace(path, dest)
            else:
                _remove(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _remove_empty(dirs: Sequence[Path]) -> None:
    for d in reversed(dirs):
        with contextlib.suppress(OSError):
            d.rmdir()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _swap_in(out: Path, new: Mapping[str, Path], tag: str) -> None:
    """Rename each ``new[name]`` to ``out/name``, moving the previous one aside first; if any rename fails, put
    everything back as it was (then raise)."""
    moved_in: list[str] = []
    backups: dict[str, Path] = {}
    try:
        for name, path in new.items():
            dest = out / name
            if dest.exists() or dest.is_symlink():
                backup = out / f".{name}.old.{tag}"
                os.replace(dest, backup)
                backups[name] = backup  # once moved (a failed move has nothing to put back, and named ENOENT)
            os.replace(path, dest)
            moved_in.append(name)
    except BaseException:  # Ctrl-C too: what was moved goes back
        for name in moved_in:
            _remove(out / name)
        for name, backup in backups.items():
            os.replace(backup, out / name)
        raise
    for backup in backups.values():
        _remove(backup)


def export_study(
    study: optuna.Study, out: str | Path, *, command: str | None = None, check: bool = True,
    abandoned: bool = False,
) -> ExportResult:
    """Write ``configs/*.json`` for the Pareto set, ``trials.csv`` and ``pareto.csv`` under ``out``.

    Raises :class:`~searcher.errors.StorageError` for a study without a completed trial, and
    :class:`~searcher.errors.ConfigError` when ``out`` cannot be written; nothing is written then. ``check``:
    record each config's logits on the check input (rebuilds each model once). ``abandoned``: no process runs the
    study's RUNNING trials (:func:`~searcher.study.abandoned_trials`), so they will not finish by themselves."""
    from .study import pareto_trials, test_result, throughput_of

    if not isinstance(study, optuna.Study):
        raise ConfigError(f"export takes an optuna.Study (optimize's result.study), got {type(study).__name__}")
    if not isinstance(out, str | Path):
        raise ConfigError(f"out must be a folder's path, got {out!r}")
    out = Path(out)
    trials = study.get_trials(deepcopy=False)
    states = {s.name: n for s in TrialState if (n := sum(t.state == s for t in trials))}
    if not states.get("COMPLETE"):
        what = "no trial" if not trials else f"no completed trial ({', '.join(f'{n} {s}' for s, n in states.items())})"
        raise StorageError(f"study {study.study_name!r} has {what}; run 'searcher optimize' first")
    check_replaceable(out, study.study_name)
    created = _writable_dir(out)  # fail fast, before the models are rebuilt
    try:
        # 1. compute everything
        warnings: list[str] = []
        if states.get("RUNNING"):
            warnings.append(
                f"{states['RUNNING']} trial(s) of study {study.study_name!r} "
                + (f"were left running by an optimize that stopped; exported the {states.get('COMPLETE', 0)} "
                   "completed ones — the same 'searcher optimize' command fails and retries them" if abandoned else
                   f"are still running; exported the {states.get('COMPLETE', 0)} completed ones — export again "
                   "when they finish")
            )
        pareto = pareto_trials(study, trials)  # one snapshot for every table: workers may be adding trials
        checker = _Checker(study)
        configs = [config_of(study, t, checker(t) if check else None, command) for t in pareto]
        names = _unique_names(configs)
        if checker.problem:
            warnings.append(f"configs carry no logits check: cannot rebuild the model ({checker.problem})")
        missing = [t.number for t in pareto if test_result(study, t) is None or throughput_of(study, t) is None]
        if missing:
            running = states.get("RUNNING") and not abandoned  # that optimize tests its Pareto set when it ends
            warnings.append(
                f"trial(s) {missing} have no test-split result or throughput yet; "
                + ("the optimize running the study tests and times the Pareto set when it ends: export again then"
                   if running else "rerun 'searcher optimize' with the same arguments (it re-evaluates and times the "
                   "Pareto set at the end) and export again")
            )
        if not pareto:
            warnings.append(f"study {study.study_name!r} has no feasible completed trial; no config written")
        frame = trials_frame(study, trials)
        order = {t.number: i for i, t in enumerate(pareto)}
        pareto_frame = frame[frame["trial"].isin(order)].sort_values("trial", key=lambda s: s.map(order))
        texts = {"trials.csv": frame.to_csv(index=False), "pareto.csv": pareto_frame.to_csv(index=False)}
    except BaseException:
        _remove_empty(created)
        raise

    # 2. write to temporary files, 3. rename into place
    tag = f"{os.getpid()}.tmp"
    new = {"configs": out / f".configs.{tag}", **{name: out / f".{name}.{tag}" for name in texts}}
    _sweep(out)
    try:
        new["configs"].mkdir()
        for name, cfg in zip(names, configs, strict=True):
            (new["configs"] / name).write_text(json.dumps(cfg, indent=2) + "\n")
        for name, text in texts.items():
            new[name].write_text(text)
        _swap_in(out, new, tag)
    except BaseException as e:  # Ctrl-C too: no temporary file stays behind
        for path in new.values():
            _remove(path)
        _remove_empty(created)
        if isinstance(e, OSError):
            raise ConfigError(f"cannot write the export to {out}: {e.strerror or e}; nothing was changed") from e
        raise

    for w in warnings:
        log.warning("%s", w)
    rows = [
        {
            "trial": t.number,
            "reducer": cfg["reducer"],
            "baseline": cfg["provenance"]["baseline"] or "",
            "tokens": cfg["metrics"]["tokens"],
            "search_top1": cfg["metrics"]["search_top1"],
            "test_top1": cfg["metrics"]["test_top1"],
            "gflops": cfg["metrics"]["gflops"],
            "img_s": (cfg["metrics"]["throughput"] or {}).get("img_s"),
            "arch": cfg["arch"],
            "config": f"configs/{name}",
        }
        for t, cfg, name in zip(pareto, configs, names, strict=True)
    ]
    files = [out / "configs" / n for n in names] + [out / n for n in texts]
    return ExportResult(study.study_name, out, files, rows, states, warnings, abandoned and bool(states.get("RUNNING")))


def export_run(study: optuna.Study, out: str | Path) -> list[Path]:
    """:func:`export_study`, returning the files written (what ``searcher optimize`` calls at the end)."""
    return export_study(study, out).files


def export_command(
    study_name: str | None, out: str | Path | None, storage: str | None, *, command: str | None = None
) -> dict[str, Any]:
    """``searcher export``: find the study (``--out DIR``, or ``--study NAME --storage URL``), export it to
    ``out`` (default ``runs/<study>``) and return a summary (``--json``; :func:`export_text` prints it)."""
    study_name, out, storage = study_target(study_name, out, storage)
    from .study import abandoned_trials

    study = open_study(study_name, out, storage)
    abandoned = abandoned_trials(study, find_storage(out, storage))
    result = export_study(study, run_dir(study.study_name, out), command=command, abandoned=abandoned)
    return result.to_dict()


def export_text(result: Mapping[str, Any]) -> str:
    """The human-readable form of :func:`export_command`'s summary."""
    states = ", ".join(f"{n} {s.lower()}" for s, n in result["states"].items())
    lines = [f"study {result['study']}: {result['trials']} trials ({states})"]
    if result["running"] and result.get("abandoned"):
        lines.append(f"note: {result['running']} trial(s) left running by an optimize that stopped; the same "
                     "'searcher optimize' command retries them")
    elif result["running"]:
        lines.append(f"note: {result['running']} trial(s) still running; export again when they finish")
    lines += ["", "Pareto set:", pareto_table(result["pareto"]), "", f"written to {result['out']}/:"]
    lines += [f"  {Path(f).relative_to(result['out'])}" for f in result["files"]]
    return "\n".join(lines)
