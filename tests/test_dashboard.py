"""``searcher dashboard``: optuna-dashboard on a loopback port lists the study and its trials, with the objective
names set, and stops cleanly (from a test, and on Ctrl-C)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

from searcher.dashboard import Dashboard, dashboard_command, ensure_metric_names
from searcher.errors import ConfigError, StorageError
from searcher.study import open_storage

N_TRIALS = 5
# Loopback requests must not go through a proxy from the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str) -> dict:
    with OPENER.open(url, timeout=60) as r:
        return json.loads(r.read())


@pytest.fixture
def storage_url(tmp_path: Path) -> str:
    """A small study as ``searcher optimize`` leaves it, except that its objective names are not set yet."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="dash", storage=url, directions=["maximize", "minimize"])
    study.set_user_attr("spec", {"name": "dash", "objectives": ["top1", "gflops"]})
    for i in range(N_TRIALS):
        study.add_trial(
            create_trial(
                params={"w0": i / N_TRIALS},
                distributions={"w0": FloatDistribution(0.0, 1.0)},
                values=[70.0 + i, 1.0 + 0.1 * i],
                user_attrs={"gflops": 1.0 + 0.1 * i, "top1": 70.0 + i},
            )
        )
    return url


def test_metric_names_are_written_only_into_searcher_studies(tmp_path: Path) -> None:
    """A plain Optuna study was labelled top1/gflops for good (until 2026-12-07)."""
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    plain = optuna.create_study(study_name="plain", storage=url, directions=["maximize", "minimize"])
    assert ensure_metric_names(plain) == ["objective 0", "objective 1"]
    assert optuna.load_study(study_name="plain", storage=url).metric_names is None


def test_dashboard_api_lists_the_study_and_its_trials(storage_url: str) -> None:
    study = optuna.load_study(study_name="dash", storage=storage_url)
    assert ensure_metric_names(study) == ["top1", "gflops"]
    with Dashboard(open_storage(storage_url), "127.0.0.1", 0).start() as dash:
        assert dash.port > 0
        base = f"http://127.0.0.1:{dash.port}"
        studies = get(f"{base}/api/studies")["study_summaries"]
        [summary] = [s for s in studies if s["study_name"] == "dash"]
        detail = get(f"{base}/api/studies/{summary['study_id']}")
        assert detail["name"] == "dash"
        assert len(detail["trials"]) == N_TRIALS
        assert detail["objective_names"] == ["top1", "gflops"]
        assert dash.url(summary["study_id"]) == f"{base}/dashboard/studies/{summary['study_id']}"
    # stopped: the port is closed
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", dash.port), timeout=5):
        pass


def test_a_busy_port_is_a_clear_error(storage_url: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port {port} .* already in use"):
            Dashboard(open_storage(storage_url), "127.0.0.1", port)


@pytest.mark.parametrize("port", [-1, 65536, 99999])
def test_a_port_out_of_range_is_a_clear_error(storage_url: str, port: int) -> None:
    with pytest.raises(ConfigError, match=f"port {port} is out of range"):  # a traceback until 2026-12-07
        Dashboard(open_storage(storage_url), "127.0.0.1", port)


def test_a_missing_study_is_a_clear_error(storage_url: str, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no study 'nope'"):
        dashboard_command("nope", None, storage_url, "127.0.0.1", 0)
    with pytest.raises(StorageError, match="no study in"):
        dashboard_command(None, tmp_path / "empty-run", None, "127.0.0.1", 0)
    assert not (tmp_path / "empty-run").exists()


SERVE = """
import json, sys
from searcher.dashboard import dashboard_command
dashboard_command(None, None, sys.argv[1], "127.0.0.1", 0, announce=lambda info: print(json.dumps(info), flush=True))
"""


def _poll(url: str, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            get(url)
        except OSError:  # the server went away
            time.sleep(0.05)


@pytest.mark.parametrize("inherited", [signal.SIG_DFL, signal.SIG_IGN], ids=["sigint-default", "sigint-ignored"])
def test_dashboard_command_prints_the_url_and_stops_on_ctrl_c(storage_url: str, inherited: signal.Handlers) -> None:
    # "sigint-ignored": how a shell without job control (a script, CI) starts a background command; Python then
    # keeps SIGINT ignored unless the program installs a handler, and the dashboard would never stop.
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, storage_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, inherited),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        info = json.loads(line)
        assert info["study"] == "dash" and info["objectives"] == ["top1", "gflops"]
        assert info["url"].startswith("http://127.0.0.1:") and "/dashboard/studies/" in info["url"]
        base = info["dashboard"].removesuffix("/dashboard")
        assert [s["study_name"] for s in get(f"{base}/api/studies")["study_summaries"]] == ["dash"]
        # Ctrl-C while requests are being served (a browser polls): the signal may land in the middle of one
        stop = threading.Event()
        poller = threading.Thread(target=_poll, args=(f"{base}/api/studies", stop), daemon=True)
        poller.start()
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        stop.set()
        poller.join(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "stopped optuna-dashboard" in err and out == ""  # stdout: the JSON line (read above) only, for --json
    assert "Traceback" not in err
    port = int(base.rsplit(":", 1)[1])  # free again: a new server can bind it
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
