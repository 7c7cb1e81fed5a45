"""A flush on a timer, shared by the gateway's batched recorders (activity, per-key usage, served counts).

Each recorder keeps its counts in memory and writes them to the store every few seconds, never per request;
this is the one place that owns the thread doing it, and the last flush when a worker shuts down (so a
stopping instance loses no counts).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta


class PeriodicFlush:
    """Calls ``flush`` every ``interval`` on a daemon thread named ``name`` between ``start`` and ``close``;
    ``close`` ends with ``last`` (``flush`` unless given: a recorder that withdraws instead of flushing)."""

    def __init__(
        self, name: str, interval: timedelta, flush: Callable[[], None], last: Callable[[], None] | None = None
    ) -> None:
        self._name = name
        self._interval = interval.total_seconds()
        self._flush = flush
        self._last = last or flush
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the timer, then call ``last`` once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._interval + 5)
            self._thread = None
        self._last()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._flush()
