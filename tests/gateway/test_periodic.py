"""The recorders' shared timer: it flushes while running, and a close flushes once more and stops it."""

from __future__ import annotations

import threading
from datetime import timedelta

from gateway.periodic import PeriodicFlush


def test_flushes_on_its_timer_and_once_more_at_close() -> None:
    flushed: list[str] = []
    twice = threading.Event()

    def flush() -> None:
        flushed.append(threading.current_thread().name)
        if len(flushed) >= 2:
            twice.set()

    periodic = PeriodicFlush("gateway-test", timedelta(milliseconds=10), flush)
    periodic.start()
    assert twice.wait(10)
    periodic.close()
    after_close = len(flushed)

    assert flushed[0] == "gateway-test"  # on the timer's own thread
    assert flushed[-1] == threading.current_thread().name  # the last flush is the closer's
    assert not any(t.name == "gateway-test" for t in threading.enumerate())
    assert len(flushed) == after_close


def test_close_without_start_still_flushes() -> None:
    flushed: list[int] = []
    PeriodicFlush("gateway-test", timedelta(seconds=5), lambda: flushed.append(1)).close()
    assert flushed == [1]
