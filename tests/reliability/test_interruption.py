"""Interruption: ``searcher optimize`` killed mid-trial, again and again, loses and duplicates nothing.

One study (the tiny one, SQLite at ``OUT/study.db``) is started in a subprocess six times and interrupted each
time while a trial is RUNNING: SIGKILL three times, Ctrl-C (SIGINT) twice, and Ctrl-C twice in a row once. After
every interruption the finished trials seen so far must still be there, unchanged; during the Ctrl-C rounds an
``export`` of the running study must be a consistent snapshot. Then the same command, run once more after the
heartbeat grace period, must finish the requested number of trials: no RUNNING trial left, every killed trial
FAIL and retried, no candidate evaluated twice, no finished trial lost or changed.

``slow``: about 60 s on the project's 2-core machine (six starts of a fresh process, about 7 s each, and what is
left of the 30 s heartbeat grace before the last one).

Ctrl-C on ``--workers 2`` (the journal file): SIGINT to the whole process group (a terminal's Ctrl-C) or to the
parent alone, once or twice; about 30 s each (two starts of three processes). The trials of killed workers that
never beat, and of killed journal workers, are in ``test_dead_workers.py``.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from chaos import FINISHED, fingerprint, run_cli, sqlite_heartbeats, sqlite_states, start_cli, trials_of, wait_for

from searcher._sigint import ECHO_S
from searcher.cli import main

TRIALS = 24  # room for trials that finish while a round exports (a loaded machine ran 7 during one)
GRACE_S = 30  # searcher.study.open_storage: RDB storages fail a trial whose heartbeat is this old
MAX_RETRY = 2  # ... and re-queue it at most this many times
RUNNING = optuna.trial.TrialState.RUNNING
FAIL = optuna.trial.TrialState.FAIL

# one round per start: the signals sent, a short pause between them. The kills come first, so that most of the
# heartbeat grace period that the last start waits for passes during the Ctrl-C rounds.
ROUNDS = [
    ("SIGKILL", [signal.SIGKILL]),
    ("SIGKILL", [signal.SIGKILL]),
    ("SIGKILL", [signal.SIGKILL]),
    ("SIGINT", [signal.SIGINT]),
    ("SIGINT", [signal.SIGINT]),
    ("SIGINT twice", [signal.SIGINT, signal.SIGINT]),
]


def _new_running(db: Path, exclude: set[int]) -> int | None:
    """The newest RUNNING trial not in ``exclude`` whose objective runs (it has recorded a heartbeat).

    Why the heartbeat: this test checks that a killed trial is failed by its stale heartbeat. A trial killed
    before its first beat is failed too, by its start time (``test_dead_workers.py``)."""
    beating = sqlite_heartbeats(db)
    running = [n for n, s in sqlite_states(db).items() if s == "RUNNING" and n not in exclude and n in beating]
    return max(running) if running else None


def check_export_snapshot(out: Path, stdout: str) -> dict:
    """``searcher export --json`` of a study that is being optimised: its summary, trials.csv, pareto.csv and
    configs/ describe one and the same set of trials."""
    r = json.loads(stdout)
    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    with open(out / "pareto.csv") as f:
        pareto_rows = list(csv.DictReader(f))
    states = Counter(row["state"] for row in rows)
    assert r["trials"] == len(rows) == sum(r["states"].values())
    assert dict(states) == r["states"], (dict(states), r["states"])
    assert len({row["trial"] for row in rows}) == len(rows)
    by_trial = {row["trial"]: row for row in rows}
    assert {row["trial"] for row in pareto_rows} <= set(by_trial)
    assert all(by_trial[row["trial"]]["state"] == "COMPLETE" for row in pareto_rows)
    configs = sorted((out / "configs").glob("*.json"))
    assert len(configs) == len(r["pareto"]) == len(pareto_rows)
    for c in configs:
        assert by_trial[str(json.loads(c.read_text())["provenance"]["trial"])]["state"] == "COMPLETE"
    if r["states"].get("RUNNING"):
        assert any("still running" in w for w in r["warnings"])
    return r


@pytest.mark.slow
def test_killed_and_interrupted_studies_resume_without_losing_a_trial(
    tiny: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tiny.write_spec(tmp_path / "tiny.yaml", trials=TRIALS)
    out = tmp_path / "run"
    db = out / "study.db"
    url = f"sqlite:///{db}"
    argv = ["optimize", "--study", str(spec), "--out", str(out)]
    seen: dict[int, tuple] = {}  # finished trials so far: number -> fingerprint
    killed: list[int] = []  # trials left RUNNING by SIGKILL
    last_kill = 0.0
    exports = 0
    report = []

    def check_nothing_lost() -> None:
        now = {t.number: fingerprint(t) for t in trials_of(url) if t.state in FINISHED}
        for n, fp in seen.items():
            assert now.get(n) == fp, f"finished trial {n} was lost or changed"
        seen.update(now)

    for i, (what, signals) in enumerate(ROUNDS):
        log = tmp_path / f"round{i}.log"
        with start_cli(argv, tmp_path, log) as proc:
            exclude = set(killed)
            if what.startswith("SIGINT") and any(s == "COMPLETE" for s in sqlite_states(db).values()):
                # export while the study runs (a trial may be RUNNING or just finishing)
                wait_for(lambda ex=exclude: _new_running(db, ex), 600, "a trial to start", proc, log)
                capsys.readouterr()
                assert main(["export", "--out", str(out), "--json"]) == 0
                check_export_snapshot(out, capsys.readouterr().out)
                exports += 1
            trial = wait_for(lambda ex=exclude: _new_running(db, ex), 600, "a trial to start", proc, log)
            for k, sig in enumerate(signals):
                if k:  # two presses: further apart than one press signalled twice (ECHO_S)
                    time.sleep(ECHO_S + 0.05)
                proc.send_signal(sig)
            rc = proc.wait(timeout=600)
        text = log.read_text()
        state = sqlite_states(db)[trial]
        report.append((what, trial, rc, state))
        assert "Traceback" not in text and "database is locked" not in text, text[-3000:]
        if what == "SIGKILL":
            assert rc == -signal.SIGKILL
            if state == "RUNNING":
                killed.append(trial)
                last_kill = time.monotonic()
        elif what == "SIGINT":  # finish the current trial, export, and exit 130 (it exited 0 until 2026-12-08)
            assert rc == 130 and "interrupted: stopped after the current trial" in text, text[-3000:]
            assert "stopping after the current trial" in text
            assert state in ("COMPLETE", "PRUNED"), report
        elif "interrupted: stopped after the current trial" in text:  # it finished before the second Ctrl-C came
            # (a second press after its last line, as the interpreter exits, ends it by the signal: -SIGINT)
            assert rc in (130, -signal.SIGINT) and state in ("COMPLETE", "PRUNED"), report
        else:  # the second Ctrl-C abandons the trial: it is failed, not left RUNNING
            assert rc == 130 and "interrupted" in text, text[-3000:]
            assert state != "RUNNING", report
        check_nothing_lost()
    assert len(killed) >= 2, report
    assert exports >= 2

    # the same command, after the heartbeat grace period: the killed trials are failed and retried
    time.sleep(max(0.0, last_kill + GRACE_S + 3 - time.monotonic()))
    proc = run_cli(argv, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "database is locked" not in proc.stderr
    check_nothing_lost()
    trials = trials_of(url)
    finished = [t for t in trials if t.state in FINISHED and "duplicate_of" not in t.user_attrs]  # repeats do not count
    assert len(finished) == TRIALS, report
    assert not [t.number for t in trials if t.state == RUNNING]
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    retried = {}
    for t in trials:
        for origin in t.system_attrs.get("retry_history", []):
            retried.setdefault(origin, []).append(t)
    for n in killed:  # failed, and retried unless it was already the last retry of a candidate
        assert trials[n].state == FAIL, f"killed trial {n} is {trials[n].state.name}"
        retries = len(trials[n].system_attrs.get("retry_history", []))
        assert n in retried or retries == MAX_RETRY, f"killed trial {n} was not retried"
    for origin, copies in retried.items():  # a retried candidate finished at most once
        assert sum(t.state in FINISHED for t in copies) <= 1, origin
    params = [json.dumps(t.params, sort_keys=True) for t in finished]
    assert len(set(params)) == len(params), "a candidate was evaluated twice"
    (tmp_path / "report.json").write_text(json.dumps({"rounds": report, "killed": killed, "exports": exports}))


def test_resume_fails_a_dead_workers_trial_even_when_no_trial_is_left_to_run(
    tiny: SimpleNamespace, tmp_path: Path
) -> None:
    """A worker killed in the study's last trial leaves it RUNNING; the next ``optimize`` with the same command
    has nothing left to run, and must still fail that trial once its heartbeat is stale, instead of leaving it
    RUNNING for ever (export would warn about it on every run); the study is complete, so no retry is queued (one
    stayed WAITING in it for good until 2026-12-07)."""
    import sqlite3

    from searcher.study import StudySpec, open_storage, optimize

    spec = StudySpec.from_yaml(tiny.write_spec(tmp_path / "tiny.yaml", trials=2, baselines=False))
    out = tmp_path / "run"
    optimize(spec, out, progress=False)
    url = f"sqlite:///{out / 'study.db'}"
    storage = open_storage(url)
    study_id = storage.get_study_id_from_name("tiny")
    dead = storage.create_new_trial(study_id)  # a worker started it ...
    storage.record_heartbeat(dead)  # ... and died: its last heartbeat is two minutes old
    with sqlite3.connect(out / "study.db") as con:
        con.execute("UPDATE trial_heartbeats SET heartbeat = datetime('now', '-120 seconds') WHERE trial_id = ?",
                    (dead,))
    storage.engine.dispose()
    optimize(spec, out, progress=False)
    trials = trials_of(url)
    number = storage.get_trial_number_from_id(dead)
    assert trials[number].state == FAIL
    assert not [t.number for t in trials if t.state == RUNNING]
    assert not [t.state.name for t in trials if number in t.system_attrs.get("retry_history", [])]


# ------------------------------------------------------------------------------------- Ctrl-C with --workers
STOP_BOUND_S = 30  # from the first SIGINT to the exit: measured 3.4-3.9 s (the workers finish or abandon their
# trials, stop, and the parent re-evaluates the Pareto set and exports) on the 2-core machine under load


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.parametrize("how", ["group", "parent", "parent twice", "parent killed"])
def test_ctrl_c_on_several_workers_stops_them_all_cleanly(
    tiny: SimpleNamespace, tmp_path: Path, how: str
) -> None:
    """``searcher optimize --workers 2`` (journal file) gets SIGINT mid-run: from a terminal (the whole process
    group), or sent to the parent alone, once or twice. Once: every worker finishes its trial and the run exits 0,
    with its results exported; twice: the trials still running are abandoned (failed, with the reason; a trial
    that finished in the 20 ms between the presses stays finished) and it exits 130. Either way it exits within
    ``STOP_BOUND_S``, no trial is left RUNNING, no worker process is left behind, and the same command resumes
    the study to the requested count with no finished trial lost, changed or evaluated twice. About 25 s each
    (two starts of three processes)."""
    trials = 24  # enough that both workers are in trials for a while (a trial takes 0.1-1 s)
    spec = tiny.write_spec(tmp_path / "tiny.yaml", trials=trials)
    out = tmp_path / "run"
    journal = f"journal:{out / 'study.journal'}"
    argv = ["optimize", "--study", str(spec), "--out", str(out), "--workers", "2"]
    log = tmp_path / "optimize.log"

    def owners_of(trials_now: list) -> set[int]:
        return {t.system_attrs["searcher:owner"]["pid"] for t in trials_now if "searcher:owner" in t.system_attrs}

    with start_cli(argv, tmp_path, log, new_session=True) as proc:
        def mid_run() -> bool:  # a trial finished, and both workers are in a trial
            trials_now = trials_of(journal)
            owners = {t.system_attrs.get("searcher:owner", {}).get("pid") for t in trials_now if t.state == RUNNING
                      and "candidate" in t.user_attrs}
            return any(t.state in FINISHED for t in trials_now) and len(owners - {None}) == 2

        wait_for(mid_run, 300, "both workers to run a trial", proc, log)
        before = {t.number: fingerprint(t) for t in trials_of(journal) if t.state in FINISHED}
        t0 = time.monotonic()
        if how == "group":  # what a terminal's Ctrl-C does: SIGINT to every process of the foreground group
            os.killpg(proc.pid, signal.SIGINT)
        elif how == "parent killed":  # each worker is told once (Linux tells it as each of the parent's threads
            proc.kill()  # ends: until 2026-12-07 that was two presses, and the trials were abandoned)
        else:
            proc.send_signal(signal.SIGINT)
            if how == "parent twice":  # 150 ms apart: the workers are still in their trials
                time.sleep(ECHO_S + 0.05)
                proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=STOP_BOUND_S)
        if how == "parent killed":  # the workers finish their trials on their own
            wait_for(lambda: not [p for p in owners_of(trials_of(journal)) if _pid_alive(p)], STOP_BOUND_S,
                     "the workers to stop", None, log)
        stopped_s = time.monotonic() - t0
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert how == "parent killed" or "stopping after the current trials" in text, text[-3000:]
    trials_now = trials_of(journal)
    assert not [t.number for t in trials_now if t.state == RUNNING], [(t.number, t.state.name) for t in trials_now]
    owners = owners_of(trials_now)
    assert len(owners) >= 2 and not [p for p in owners if _pid_alive(p)], "a worker outlived searcher optimize"
    abandoned = [t for t in trials_now if t.state == FAIL]
    if how == "parent twice":  # the trials still running are abandoned: failed, with the reason
        assert rc == 130 and "interrupted" in text, text[-3000:]
        assert all("abandoned with Ctrl-C" in t.user_attrs.get("fail_reason", "") for t in abandoned), abandoned
    elif how == "parent killed":  # the running trials finish (nobody is left to export them)
        assert rc == -signal.SIGKILL and not abandoned, [(t.number, t.user_attrs) for t in abandoned]
    else:  # one press: the results exported, and exit 130
        assert rc == 130 and "interrupted: stopped after the current trial" in text, text[-3000:]
        assert not abandoned and (out / "trials.csv").is_file()
    now = {t.number: fingerprint(t) for t in trials_now if t.state in FINISHED}
    assert all(now.get(n) == fp for n, fp in before.items()), "a finished trial was lost or changed"

    done = run_cli(argv, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    trials_now = trials_of(journal)
    finished = [t for t in trials_now if t.state in FINISHED]
    assert len(finished) >= trials and not [t for t in trials_now if t.state == RUNNING]
    assert sorted(t.number for t in trials_now) == list(range(len(trials_now)))
    params = [json.dumps(t.params, sort_keys=True) for t in finished]
    assert len(set(params)) == len(params), "a candidate was evaluated twice"
    now = {t.number: fingerprint(t) for t in finished}
    assert all(now.get(n) == fp for n, fp in before.items()), "a finished trial was lost or changed"
    print(f"{how}: stopped {stopped_s:.1f} s after the first SIGINT (rc {rc}, {len(abandoned)} abandoned)")


def test_a_parent_that_dies_is_one_ctrl_c_however_often_linux_says_so() -> None:
    """A worker learns of its parent's death by SIGUSR1 (PR_SET_PDEATHSIG), sent again as each of the dying
    parent's threads ends (seen: two, 100 ms apart). It is one press: the trial finishes. Until 2026-12-07 the
    death signal was SIGINT itself, and the second abandoned the trials."""
    from searcher.study import _graceful_sigint, _parent_died

    study = optuna.create_study()
    previous = signal.signal(signal.SIGUSR1, _parent_died)
    try:
        with _graceful_sigint(study, announce=False) as pressed:
            for _ in range(3):
                os.kill(os.getpid(), signal.SIGUSR1)
                time.sleep(0.05)
            assert pressed["n"] == 1
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_second_ctrl_c_waits_for_the_storage_call_it_lands_in() -> None:
    """A second Ctrl-C that lands inside Optuna's storage code is held until the call returns (there a
    KeyboardInterrupt can leave a journal lock file half released: optuna 5.0's ``release`` then unlinks twice and
    fails with FileNotFoundError, seen once in CI), then raised; one that lands elsewhere is raised at once."""
    from searcher.study import _graceful_sigint

    # a function whose code reports a file of Optuna's storages, as the frames of a real storage call do
    fake = os.path.join(os.sep, "site-packages", "optuna", "storages", "journal", "_file.py")
    scope: dict = {"os": os, "signal": signal}
    exec(compile("def append_logs(log):\n    os.kill(os.getpid(), signal.SIGINT)\n    log.append('written')\n",
                 fake, "exec"), scope)
    study = optuna.create_study()
    log: list[str] = []
    with pytest.raises(KeyboardInterrupt, match="abandoned"):
        with _graceful_sigint(study, announce=False) as pressed:
            os.kill(os.getpid(), signal.SIGINT)  # first press: stop after the trial, raise nothing
            assert pressed["n"] == 1
            time.sleep(ECHO_S + 0.05)  # a second press, not the first signalled twice
            scope["append_logs"](log)  # second press, inside the storage call: it completes
            log.append("after")
            time.sleep(5)  # the held press is raised here, within 120 ms
            log.append("not reached")
    assert log == ["written", "after"]

    log.clear()
    with pytest.raises(KeyboardInterrupt, match="abandoned"):  # held, and the block ends before it is raised
        with _graceful_sigint(study, announce=False):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(ECHO_S + 0.05)
            scope["append_logs"](log)
            scope["append_logs"](log)
    assert log[0] == "written"

    with pytest.raises(KeyboardInterrupt, match="abandoned"):  # outside storage code: raised at once
        with _graceful_sigint(study, announce=False):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(ECHO_S + 0.05)
            os.kill(os.getpid(), signal.SIGINT)
            log.append("not reached")
    assert "not reached" not in log


def test_one_press_signalled_twice_is_one_press() -> None:
    """``timeout -s INT`` signals the process and its process group: one interruption arrived twice and, counted as
    two presses, abandoned the running trials of ``--workers 2`` (2 of 4 runs of a user's probe), until 2026-12-07."""
    from searcher.study import _graceful_sigint

    with _graceful_sigint(optuna.create_study(), announce=False) as pressed:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        assert pressed["n"] == 1
