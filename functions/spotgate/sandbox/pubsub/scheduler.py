"""Cloud Scheduler for the sandbox: a ``tick`` on the control topic every ``interval``.

In GCP a Scheduler job publishes a tick to the ``control`` topic every minute so the reconciler runs even
when nothing else happens (idle timeouts, schedule windows, missed events). The sandbox publishes the same
message through the same topic; the interval is shorter so demos and tests see reconciles in seconds. The
first tick comes ``first_after`` the start, not a whole interval later, so a fresh sandbox converges at once.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta

from spotgate.clock import SystemClock
from spotgate.errors import ConfigError, SpotgateError
from spotgate.ports import Clock
from spotgate.sandbox.pubsub.push import format_time
from spotgate.sandbox.pubsub.service import MessagePublisher

log = logging.getLogger(__name__)


class Scheduler:
    """Publishes ``{"v": 1, "kind": "tick", "at": …}`` to ``topic`` every ``interval`` while started."""

    def __init__(
        self,
        publisher: MessagePublisher,
        *,
        interval: timedelta,
        topic: str = "control",
        first_after: timedelta = timedelta(milliseconds=200),
        clock: Clock | None = None,
    ) -> None:
        if interval <= timedelta(0) or first_after < timedelta(0):
            raise ConfigError(f"scheduler interval must be positive (got {interval}, first after {first_after})")
        self._publisher = publisher
        self._interval = interval.total_seconds()
        self._first_after = first_after.total_seconds()
        self._topic = topic
        self._clock = clock or SystemClock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._ticks = 0

    @property
    def ticks(self) -> int:
        """How many ticks were published since construction."""
        return self._ticks

    def start(self) -> None:
        """Start ticking; a no-op if running."""
        with self._lock:
            if self._thread is not None:
                return
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="sandbox-scheduler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop ticking and join the thread; idempotent."""
        with self._lock:
            thread, self._thread = self._thread, None
        self._stopping.set()
        if thread is not None:
            thread.join(timeout=10)

    def tick(self) -> str | None:
        """Publish one tick now; the message id, or None if Pub/Sub refused it (logged)."""
        message = {"v": 1, "kind": "tick", "at": format_time(self._clock.now())}
        try:
            message_id = self._publisher.publish(self._topic, json.dumps(message, separators=(",", ":")).encode())
        except SpotgateError:
            log.exception("scheduler could not publish a tick", extra={"topic": self._topic})
            return None
        self._ticks += 1
        return message_id

    def _run(self) -> None:
        delay = self._first_after
        while not self._stopping.wait(delay):
            self.tick()
            delay = self._interval
