"""Simulated time: a queue of callbacks ordered by instant, and the jump from one to the next.

Nothing waits: the run takes the earliest callback, moves ``now`` to its instant and calls it, so a quiet
week costs as much as the events in it. Ties run in the order they were scheduled, which (with one seeded
random generator) makes a run deterministic.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from datetime import datetime, timedelta

Callback = Callable[[], None]


class Timeline:
    """``now`` in seconds from ``start``; ``schedule`` a callback ``delay`` seconds ahead; ``run`` to the end."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.now = 0.0
        self._queue: list[tuple[float, int, Callback]] = []
        self._seq = 0
        self._on_advance: Callable[[float], None] = lambda _t: None

    def on_advance(self, observer: Callable[[float], None]) -> None:
        """Call ``observer(t)`` before time moves to ``t`` (the ledger integrates over the interval)."""
        self._on_advance = observer

    def at(self, seconds: float) -> datetime:
        """The instant ``seconds`` from the start."""
        return self.start + timedelta(seconds=seconds)

    @property
    def instant(self) -> datetime:
        return self.at(self.now)

    def schedule(self, delay: float, callback: Callback) -> None:
        self.schedule_at(self.now + max(delay, 0.0), callback)

    def schedule_at(self, at: float, callback: Callback) -> None:
        heapq.heappush(self._queue, (max(at, self.now), self._seq, callback))
        self._seq += 1

    def run(self, until: float) -> None:
        """Run every callback scheduled before ``until``, then move ``now`` to ``until``."""
        while self._queue and self._queue[0][0] < until:
            at, _, callback = heapq.heappop(self._queue)
            if at > self.now:
                self._on_advance(at)
                self.now = at
            callback()
        self._on_advance(until)
        self.now = until
