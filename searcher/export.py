"""What users take away from a study: versioned JSON configs of the Pareto set, and tables.

A config holds the model source (timm name, embedded model, or AutoFormer checkpoint with its sha256), the
subnet, the schedule, the metrics with the device they were measured on, and provenance (study, trial, searcher,
torch and timm versions, command). ``searcher.load_config`` (deploy) turns it back into a model. Every file is
written atomically: a crash never leaves half a file, and never replaces a good one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from .errors import ConfigError, StorageError

__all__ = [
    "CONFIG_VERSION",
    "config_of",
    "config_name",
    "export_run",
    "trials_frame",
    "pareto_table",
    "atomic_write_text",
]

log = logging.getLogger(__name__)
CONFIG_VERSION = 1


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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


def config_of(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The exported config of one trial (DESIGN.md "Exported config")."""
    from .study import test_result

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
            "test_top1": test.get("top1"),
            "test_top5": test.get("top5"),
            "gflops": trial.user_attrs.get("gflops"),
            "tokens": trial.user_attrs.get("tokens"),
            "throughput": trial.user_attrs.get("throughput"),
            "data": spec.get("data"),
        },
        "provenance": {
            "study": study.study_name,
            "trial": trial.number,
            "baseline": trial.user_attrs.get("baseline"),
            "budget_gflops": study.user_attrs.get("budget_gflops"),
            **_versions(),
            "command": study.user_attrs.get("command", " ".join(["searcher", *sys.argv[1:]])),
            "exported": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }


def config_name(config: dict[str, Any]) -> str:
    """A stable name that says what the config is: ``<model>.<reducer>.<GFLOPs>g.json``."""
    model = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(config["model"].get("name", "model")))
    g = config["metrics"]["gflops"]
    return f"{model}.{config['reducer']}.{g:.3g}g.json"


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """Every trial, feasible or not, with its parameters and metrics."""
    from .study import test_result

    rows = []
    for t in study.get_trials(deepcopy=False):
        ua = t.user_attrs
        tp = ua.get("throughput") or {}
        cand = ua.get("candidate") or {}
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name,
                "reducer": cand.get("reducer", t.params.get("reducer")),
                "baseline": ua.get("baseline", ""),
                "feasible": bool(ua.get("feasible")),
                "search_top1": ua.get("top1"),
                "test_top1": (test_result(study, t) or {}).get("top1"),
                "gflops": ua.get("gflops"),
                "img_s": tp.get("img_s"),
                "tokens": json.dumps(ua.get("tokens")) if ua.get("tokens") else None,
                "images_evaluated": ua.get("images_evaluated"),
                "infeasible": ua.get("infeasible"),
                "duration_s": t.duration.total_seconds() if t.duration else None,
                **{f"param_{k}": v for k, v in t.params.items()},
            }
        )
    return pd.DataFrame(rows)


def pareto_table(rows: Sequence[dict[str, Any]]) -> str:
    """The Pareto set as a plain-text table (pandas)."""
    if not rows:
        return "(no feasible trial)"
    df = pd.DataFrame(rows)
    df["tokens"] = df["tokens"].map(lambda v: "-".join(map(str, v)) if isinstance(v, list) else v)
    cols = [
        c for c in ("trial", "reducer", "baseline", "tokens", "search_top1", "test_top1", "gflops", "img_s") if c in df
    ]
    return df[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}")


def export_run(study: optuna.Study, out: str | Path) -> list[Path]:
    """Write ``configs/*.json`` for the Pareto set, ``trials.csv`` and ``pareto.csv`` under ``out``."""
    from .study import pareto_trials

    out = Path(out)
    trials = study.get_trials(deepcopy=False)
    if not any(t.state == TrialState.COMPLETE for t in trials):
        raise StorageError(f"study {study.study_name!r} has no completed trial yet; run 'searcher optimize' first")
    running = sum(t.state == TrialState.RUNNING for t in trials)
    if running:
        log.warning("study %s still has %d running trial(s); exporting the finished ones", study.study_name, running)
    try:
        (out / "configs").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot write to {out}: {e.strerror}; choose a writable --out") from e
    written: list[Path] = []
    names: set[str] = set()
    pareto = pareto_trials(study)
    for t in pareto:
        cfg = config_of(study, t)
        name = config_name(cfg)
        if name in names:
            name = name.replace(".json", f".t{t.number}.json")
        names.add(name)
        path = out / "configs" / name
        atomic_write_text(path, json.dumps(cfg, indent=2) + "\n")
        written.append(path)
    frame = trials_frame(study)
    for name, df in (
        ("trials.csv", frame),
        ("pareto.csv", frame[frame["trial"].isin([t.number for t in pareto])]),
    ):
        atomic_write_text(out / name, df.to_csv(index=False))
        written.append(out / name)
    return written
