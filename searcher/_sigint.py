"""One place that installs a SIGINT (Ctrl-C) handler for a block and puts the previous one back after it."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def on_sigint(handler: Callable[[int, Any], Any]) -> Iterator[bool]:
    """Run the block with ``handler`` for SIGINT, then restore the previous handler. Yields False, and installs
    nothing, outside the main thread (Python sets signal handlers only there)."""
    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread
        yield False
        return
    try:
        yield True
    finally:
        signal.signal(signal.SIGINT, previous)
