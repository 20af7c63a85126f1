"""``searcher dashboard``: optuna-dashboard on a study's storage, in a server this module controls.

optuna-dashboard's own ``run_server`` blocks until the process dies; here its WSGI app
(``optuna_dashboard.wsgi``) runs in a ``wsgiref`` server that :class:`Dashboard` serves from a thread and stops
(``stop()``), so the command ends cleanly on Ctrl-C and a test can stop it. The study's
objective names (``top1``, ``gflops``) are set when the study lacks them, so the dashboard's plots are labelled.

The dashboard can modify studies (notes, trial states), so it listens on the loopback interface unless another
``--host`` is given.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import signal
import socket
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna

from ._sigint import on_sigint
from .errors import ConfigError

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "Dashboard", "dashboard_command", "ensure_metric_names"]

log = logging.getLogger(__name__)
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


class _QuietHandler(WSGIRequestHandler):
    """Request lines go to the debug log, not to stderr (the dashboard polls every few seconds)."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        log.debug("%s %s", self.address_string(), format % args)


def ensure_metric_names(study: optuna.Study) -> list[str]:
    """The study's objective names. A searcher study without them (begun before they were recorded) gets its
    spec's (``top1``, ``gflops``, …) written, where the storage can be written; another study is left as it is
    (until 2026-12-07 any study was labelled top1/gflops, and a read-only one was a traceback)."""
    if study.metric_names:
        return list(study.metric_names)
    spec = study.user_attrs.get("spec")
    names = [f"objective {i}" for i in range(len(study.directions))]
    if isinstance(spec, dict) and len(spec.get("objectives") or []) == len(names):
        names = list(spec["objectives"])
        try:
            with warnings.catch_warnings():  # experimental in Optuna 5, used on purpose
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(names)
        except Exception as e:  # a read-only storage: the dashboard shows the values unnamed
            log.warning(f"cannot record the objective names in the study ({str(e).splitlines()[0]}); the "
                        "dashboard shows them unnamed")
    return names


class Dashboard:
    """optuna-dashboard serving ``storage`` on ``host:port`` (port 0: any free port).

    ``start()`` serves in a background thread and returns, ``serve_forever()`` serves until Ctrl-C or ``stop()``;
    ``stop()`` ends either and frees the port. Also a context manager (``with Dashboard(...).start() as d:``).
    """

    def __init__(self, storage: optuna.storages.BaseStorage, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT):
        from optuna_dashboard import wsgi

        self.host = host
        if not 0 <= port <= 65535:  # the socket's OverflowError would be a traceback
            raise ConfigError(f"port {port} is out of range; choose a --port from 0 (any free port) to 65535")
        try:
            self.server: WSGIServer = make_server(host, port, wsgi(storage), handler_class=_QuietHandler)
        except socket.gaierror as e:
            raise ConfigError(f"cannot listen on host {host!r}: {e.strerror}; use an address such as 127.0.0.1") from e
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {port} on {host} is already in use; choose another --port") from e
            raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}; choose another --host/--port") from e
        self.port = int(self.server.server_address[1])
        self._thread: threading.Thread | None = None

    def url(self, study_id: int | None = None) -> str:
        """The dashboard's address, or a study's page in it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        base = f"http://{host}:{self.port}/dashboard"
        return base if study_id is None else f"{base}/studies/{study_id}"

    def start(self) -> Dashboard:
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(target=self.server.serve_forever, name="optuna-dashboard", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve until :meth:`stop` or Ctrl-C (the KeyboardInterrupt is let through; call :meth:`stop` then).

        The server runs in its thread and the calling thread only waits, so Ctrl-C never lands inside a request:
        wsgiref's handler catches everything a request raises, KeyboardInterrupt included, and would serve on."""
        if self._thread is None:
            self.start()
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join()
            self._thread = None
        self.server.server_close()

    def __enter__(self) -> Dashboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def _ctrl_c_stops() -> Iterator[None]:
    """Ctrl-C (SIGINT) raises KeyboardInterrupt while serving, even when the process inherited SIGINT as
    ignored: a shell without job control (a script, CI) starts background commands that way, and Python then
    keeps the signal ignored, so the dashboard could not be stopped with the signal it announces. Outside the main
    thread nothing is installed: the caller stops the server with :meth:`Dashboard.stop`."""
    with on_sigint(signal.default_int_handler):
        yield


def _announce(info: dict[str, Any]) -> None:
    print(f"optuna-dashboard for study {info['study']}: {info['url']}  (Ctrl-C to stop)", flush=True)


def dashboard_command(
    study_name: str | None,
    out: str | Path | None,
    storage: str | None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    announce: Callable[[dict[str, Any]], None] = _announce,
) -> dict[str, Any]:
    """``searcher dashboard``: find the study (``--out DIR``, or ``--study NAME --storage URL``), serve
    optuna-dashboard on its storage at ``host:port`` until Ctrl-C, then stop cleanly.

    ``announce`` receives ``{"study", "url", "dashboard", "storage", "objectives"}`` once the server listens
    (the default prints the URL; ``--json`` can print the dict). Returns the same dict after stopping."""
    from .export import find_storage, open_study, study_target
    from .study import _redact

    study_name, out, storage = study_target(study_name, out, storage)
    url = find_storage(out, storage)
    study = open_study(study_name, storage=url)
    names = ensure_metric_names(study)
    backend = study._storage  # the storage load_study opened (Optuna has no public accessor)
    dash = Dashboard(backend, host, port)
    info = {
        "study": study.study_name,
        "url": dash.url(backend.get_study_id_from_name(study.study_name)),
        "dashboard": dash.url(),
        "storage": _redact(url),
        "objectives": names,
    }
    try:
        with _ctrl_c_stops():
            announce(info)
            dash.serve_forever()
    except KeyboardInterrupt:
        print("stopped optuna-dashboard", file=sys.stderr, flush=True)  # stdout: --json's line only
    finally:
        dash.stop()
    return info
