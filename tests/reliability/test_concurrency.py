"""Concurrency: four workers on one study, and a second ``optimize`` on a busy SQLite study.

``searcher optimize --workers 4 --trials 40`` runs in a subprocess on a real PostgreSQL server (started on
loopback by the ``postgres`` fixture) and on the journal file (what several workers get by default). Afterwards:
trial numbers are 0..n-1 without gaps or repeats, no trial is RUNNING, WAITING or FAILED (a storage error in
the middle of a trial would fail it), at least 40 finished, every COMPLETE trial carries all its user
attributes, and every trial a worker reported finished (Optuna's log line) is finished in the storage with the
same values.

``slow``: the 4-worker studies took 84 s (PostgreSQL, with the server's start) and 60 s (journal) on the
project's 2-core machine with a training job running beside it (four processes load the model and data; 40+
trials). The busy-SQLite test takes about 30 s; a worker's error reaching the parent about 10 s.
"""

from __future__ import annotations

import ast
import json
import re
import signal
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from chaos import (
    FINISHED,
    PostgresServer,
    check_complete_attrs,
    run_cli,
    sqlite_states,
    start_cli,
    tiny_spec_dict,
    trials_of,
    wait_for,
)

TRIALS = 40
WORKERS = 4
_LOGGED = re.compile(r"Trial (\d+) (finished with values: (\{.*?\}|\[.*?\]) and parameters|pruned\.)")


def _logged(text: str) -> dict[int, list[float] | None]:
    """Trials the workers reported finished (values) or pruned (None), from Optuna's INFO log lines."""
    out: dict[int, list[float] | None] = {}
    for m in _LOGGED.finditer(text):
        n = int(m.group(1))
        assert n not in out, f"trial {n} was reported finished twice"
        if m.group(3) is None:
            out[n] = None
        else:
            v = ast.literal_eval(m.group(3))
            out[n] = list(v.values()) if isinstance(v, dict) else list(v)
    return out


def check_many_workers(url: str, log: str, name: str = "tiny") -> list[optuna.trial.FrozenTrial]:
    trials = trials_of(url, name)
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials))), "trial numbers are not 0..n-1, each once"
    states = {t.number: t.state for t in trials}
    assert all(s in FINISHED for s in states.values()), {n: s.name for n, s in states.items() if s not in FINISHED}
    finished = [t for t in trials if t.state in FINISHED]
    assert len(finished) >= TRIALS
    params = [json.dumps(t.params, sort_keys=True) for t in finished]
    assert len(set(params)) == len(params), "workers evaluated the same candidate twice"
    for t in finished:
        if t.state == optuna.trial.TrialState.COMPLETE:
            check_complete_attrs(t)
    # the summary counts every worker's trials (from the storage, not from the parent process)
    stopped = sum("top1_partial" in t.user_attrs for t in finished)
    assert f"{len(finished)} trials ({stopped} stopped early" in log, log[-2000:]
    logged = _logged(log)
    assert logged, "no Optuna log lines from the workers"
    for n, values in logged.items():
        assert states[n] in FINISHED, f"worker finished trial {n}, the storage says {states[n].name}"
        if values is not None:
            assert trials[n].values == pytest.approx(values), n
    assert set(logged) == {t.number for t in finished}, "finished trials that no worker reported"
    return trials


def _run_workers(tiny: SimpleNamespace, tmp_path: Path, *storage: str) -> tuple[Path, str]:
    spec = tiny.write_spec(tmp_path / "tiny.yaml", trials=TRIALS, workers=WORKERS)
    out = tmp_path / "run"
    # -v: every worker logs each trial it finishes, which check_many_workers compares with the storage
    proc = run_cli(["-v", "optimize", "--study", str(spec), "--out", str(out), *storage], cwd=tmp_path, timeout=1800)
    log = proc.stdout + proc.stderr
    (tmp_path / "optimize.log").write_text(log)
    assert proc.returncode == 0, log[-4000:]
    assert "Traceback" not in log and "database is locked" not in log, log[-4000:]
    return out, log


@pytest.mark.slow
def test_four_workers_on_postgresql(tiny: SimpleNamespace, tmp_path: Path, postgres: PostgresServer) -> None:
    url = postgres.create_database("four_workers")
    out, log = _run_workers(tiny, tmp_path, "--storage", url)
    check_many_workers(url, log)
    assert not (out / "study.db").exists() and not (out / "study.journal").exists()


@pytest.mark.slow
def test_four_workers_on_the_journal_file(tiny: SimpleNamespace, tmp_path: Path) -> None:
    """Under a throughput floor, so the workers time the candidates that could be Pareto-optimal, each alone on the
    device while the others wait between chunks (DeviceLock): no worker is kept waiting for good."""
    out, log = _run_workers(tiny, tmp_path, "--min-throughput", "1img/s")  # several workers: OUT/study.journal
    assert (out / "study.journal").is_file() and not (out / "study.db").exists()
    trials = check_many_workers(f"journal:{out / 'study.journal'}", log)
    evaluated = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and "top1" in t.user_attrs]
    timed = [t for t in evaluated if "not_timed" not in t.user_attrs]  # over-budget draws are complete, unevaluated
    assert timed and all(t.user_attrs["throughput"]["img_s"] > 1 for t in timed)


def test_a_second_optimize_on_a_busy_sqlite_study_is_refused(tiny: SimpleNamespace, tmp_path: Path) -> None:
    """The second command is refused at once with a clear message (also when it reaches the same database file
    through ``--storage`` from another run directory); the first is not disturbed, and stops cleanly on Ctrl-C."""
    spec = tiny.write_spec(tmp_path / "tiny.yaml", trials=500)
    out = tmp_path / "run"
    db = out / "study.db"
    with start_cli(["optimize", "--study", str(spec), "--out", str(out)], tmp_path, tmp_path / "first.log") as first:
        wait_for(lambda: "RUNNING" in sqlite_states(db).values(), 900, "a trial to start", first,
                 tmp_path / "first.log")
        for extra in ([], ["--storage", f"sqlite:///{db}"]):
            other = tmp_path / "other" if extra else out
            second = run_cli(["optimize", "--study", str(spec), "--out", str(other), *extra], cwd=tmp_path)
            assert second.returncode == 2, second.stderr[-3000:]
            lines = second.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: ") and "already being optimised" in lines[0]
            assert f"pid {first.pid}" in lines[0] and "journal:PATH" in lines[0]
            assert not (tmp_path / "other").exists()
        assert first.poll() is None, "the first optimize did not survive the second"
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=900) == 130  # stopped after its trial, exported, and says it was interrupted
    log = (tmp_path / "first.log").read_text()
    assert "database is locked" not in log and "Traceback" not in log, log[-3000:]
    trials = trials_of(f"sqlite:///{db}")
    assert trials and all(t.state in FINISHED for t in trials), [t.state.name for t in trials]
    for t in trials:
        if t.state == optuna.trial.TrialState.COMPLETE:
            check_complete_attrs(t)


def test_several_workers_on_a_sqlite_run_directory_are_refused(tiny: SimpleNamespace, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """``--workers 2`` on a run directory whose study is in ``study.db``: one error line, and nothing else is
    started. Until 2026-12-07 it began a second study in ``study.journal`` beside it, and later runs, exports and
    reports read that one."""
    from searcher.cli import main

    spec, out = tiny.write_spec(tmp_path / "tiny.yaml", trials=2), tmp_path / "run"
    assert main(["optimize", "--study", str(spec), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["optimize", "--study", str(spec), "--out", str(out), "--trials", "4", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a study in SQLite (study.db)" in err and "without --workers" in err
    assert not (out / "study.journal").exists() and len(trials_of(f"sqlite:///{out / 'study.db'}")) >= 2


def test_a_worker_error_reaches_the_parent_as_the_same_error(tiny: SimpleNamespace, tmp_path: Path,
                                                              capfd: pytest.CaptureFixture[str]) -> None:
    """A worker that fails (here: its checkpoint is gone) stops the others and its error is raised by the parent
    with its type, so the CLI prints it as one ``error:`` line; no worker process prints a traceback."""
    from searcher.errors import CheckpointError
    from searcher.study import StudySpec, _create_study, _run_workers

    spec = StudySpec.from_dict(tiny_spec_dict(tiny.root, checkpoint=str(tmp_path / "gone.pth"), workers=2))
    url = f"journal:{tmp_path / 'study.journal'}"
    study = _create_study(spec, url)
    with pytest.raises(CheckpointError, match="gone.pth"):
        _run_workers(spec, url, study)
    assert "Traceback" not in capfd.readouterr().err



def test_workers_that_all_died_are_one_error_line(tiny: SimpleNamespace, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Every worker killed (kill -9, the out-of-memory killer) before the study was done: a RuntimeError with a
    traceback and exit 1 until 2026-12-07, now a WorkerError (the CLI's one line, exit 2)."""
    import chaos

    import searcher.study as study_module
    from searcher.errors import WorkerError

    monkeypatch.setattr(study_module, "_worker_main", chaos.die_at_once)  # pickled by name: the workers run it too
    spec = study_module.StudySpec.from_dict(tiny_spec_dict(tiny.root, workers=2))
    url = f"journal:{tmp_path / 'study.journal'}"
    with pytest.raises(WorkerError, match=r"worker 0 \(pid \d+, killed by signal 9\), worker 1 \(pid \d+, exit code "
                       r"9\) died; .*run the same command again"):
        study_module._run_workers(spec, url, study_module._create_study(spec, url))


def test_ctrl_c_while_the_workers_start_prints_no_traceback(tiny: SimpleNamespace, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capfd: pytest.CaptureFixture[str]) -> None:
    """A Ctrl-C at the terminal reaches a worker that is still starting (it joins a process group of its own only
    in ``_worker_main``) while it imports torch and the study code. The worker starts with SIGINT held back and
    raises the press in ``_worker_main``; until 2026-12-08 the press interrupted its imports and each worker printed
    a KeyboardInterrupt traceback. Here the press is sent to the first worker half a second after it was spawned,
    and to the parent."""
    import os
    import time
    from multiprocessing.context import SpawnProcess

    from searcher.study import StudySpec, _create_study, _run_workers

    start = SpawnProcess.start

    def start_then_press(self: SpawnProcess) -> None:
        start(self)
        time.sleep(0.5)  # the worker's interpreter is up (a press before it killed the worker) and imports torch
        os.kill(self.pid, signal.SIGINT)  # what the terminal sends to the whole foreground process group
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(SpawnProcess, "start", start_then_press)
    spec = StudySpec.from_dict(tiny_spec_dict(tiny.root, workers=2))
    url = f"journal:{tmp_path / 'study.journal'}"
    study = _create_study(spec, url)
    assert _run_workers(spec, url, study) is True  # stopped by Ctrl-C (optimize then says: before any trial)
    err = capfd.readouterr().err
    assert "Traceback" not in err, err[-3000:]
    assert not study.get_trials(deepcopy=False), "a worker ran a trial after the press"

def test_several_workers_show_the_study_progress(tiny: SimpleNamespace, tmp_path: Path,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    """With ``--workers`` the parent shows the study's progress bar, which it reads from the storage."""
    from searcher.study import StudySpec, optimize

    spec = StudySpec.from_dict(tiny_spec_dict(tiny.root, workers=2, trials=6))
    optimize(spec, tmp_path / "run", progress=True)
    err = capfd.readouterr().err
    assert "tiny:" in err and "6/6" in err and "best_top1=" in err, err[-2000:]
