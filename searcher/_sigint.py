"""SIGINT (Ctrl-C) for a block: a handler installed and the previous one put back after it, or the signal held back."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

ECHO_S = 0.1  # a second SIGINT this soon after the first is the same press, signalled twice


@contextlib.contextmanager
def on_sigint(handler: Callable[[int, Any], Any]) -> Iterator[bool]:
    """Run the block with ``handler`` for SIGINT, then restore the previous handler. Yields False, and installs
    nothing, outside the main thread (Python sets signal handlers only there).

    A SIGINT within ``ECHO_S`` of the last one handled is dropped: ``timeout -s INT`` (and other supervisors)
    signal the process and its process group, so one interruption arrives twice, and counted as two presses it
    abandoned the running trials; no hand presses Ctrl-C twice in a tenth of a second."""
    last = [-ECHO_S]

    def once(signum: int, frame: Any) -> Any:
        now = time.monotonic()
        if now - last[0] < ECHO_S:
            return None
        last[0] = now
        return handler(signum, frame)

    try:
        previous = signal.signal(signal.SIGINT, once)
    except ValueError:  # not the main thread
        yield False
        return
    try:
        yield True
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def sigint_held() -> Iterator[None]:
    """Hold SIGINT back in this thread for the block (a press waits, and is handled after it). A process started in
    the block inherits the mask through fork and exec: it starts with Ctrl-C held back until it unblocks it."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


# Code a KeyboardInterrupt must not cut short: Optuna's storages (a journal lock file held, a line half written;
# optuna 5.0's JournalFileOpenLock.release unlinks twice when interrupted between its two steps), its ``tell`` (values
# written, state not) and the database drivers under them.
_STORAGE_CODE = tuple(
    os.sep + os.path.join(*parts)
    for parts in (("optuna", "storages", ""), ("optuna", "study", "_tell.py"), ("sqlalchemy", ""), ("psycopg", ""))
)


def in_storage(frame: Any) -> bool:
    """Whether ``frame``, or a frame that called it, runs storage code (see ``_STORAGE_CODE``)."""
    while frame is not None:
        if any(part in frame.f_code.co_filename for part in _STORAGE_CODE):
            return True
        frame = frame.f_back
    return False
