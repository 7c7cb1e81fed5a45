"""Per-pool traffic counters, flushed to the store every few seconds and never per request.

The control plane reads these to keep a pool awake while it is used (``last_request_at``), to stop the
longest-idle VM first (``backend_last_request``) and to scale toward ``max_ready`` (``inflight``). A flush
sends only what changed since the last one (``requests_total`` as a delta; the store adds it up). A failed
flush keeps the counts for the next one and marks the routing table stale.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from spotgate.domain import Activity
from spotgate.errors import SpotgateError
from spotgate.ports import Clock, RouteStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Counts:
    last_request_at: datetime | None = None
    inflight: int = 0
    new_requests: int = 0
    backends: dict[str, datetime] = field(default_factory=dict)
    dirty: bool = False


class ActivityRecorder:
    def __init__(
        self, store: RouteStore, clock: Clock, interval: timedelta, on_store_result: Callable[[bool], None]
    ) -> None:
        self._store = store
        self._clock = clock
        self._interval = interval.total_seconds()
        self._report = on_store_result
        self._pools: dict[str, _Counts] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gateway-activity", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the flusher and flush once more, so a shutting-down worker loses no counts."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._interval + 5)
            self._thread = None
        self.flush()

    def arrived(self, pool: str) -> None:
        """A request for ``pool`` arrived (served or not: demand is what keeps a pool awake)."""
        now = self._clock.now()
        with self._lock:
            counts = self._pools.setdefault(pool, _Counts())
            counts.last_request_at = now
            counts.new_requests += 1
            counts.dirty = True

    @contextmanager
    def waiting(self, pool: str) -> Iterator[None]:
        """Count a request as in flight while the gateway holds it for a VM to wake."""
        with self._lock:
            counts = self._pools.setdefault(pool, _Counts())
            counts.inflight += 1
            counts.dirty = True
        try:
            yield
        finally:
            self.finished(pool)

    def started(self, pool: str, backend: str) -> None:
        now = self._clock.now()
        with self._lock:
            counts = self._pools.setdefault(pool, _Counts())
            counts.inflight += 1
            counts.backends[backend] = now
            counts.dirty = True

    def finished(self, pool: str) -> None:
        with self._lock:
            counts = self._pools.setdefault(pool, _Counts())
            counts.inflight = max(0, counts.inflight - 1)
            counts.dirty = True

    def flush(self) -> None:
        """Write every pool that changed since the last successful flush."""
        taken = self._take()
        for done, activity in enumerate(taken):
            try:
                self._store.record_activity(activity)
            except SpotgateError as e:
                log.warning("activity flush failed", extra={"pool": activity.pool, "error": str(e)})
                for unsent in taken[done:]:
                    self._put_back(unsent)
                self._report(False)
                return
        if taken:
            self._report(True)

    def _take(self) -> list[Activity]:
        now = self._clock.now()
        taken = []
        with self._lock:
            for pool, c in self._pools.items():
                if c.dirty:
                    taken.append(Activity(pool, c.last_request_at, c.inflight, c.new_requests, dict(c.backends), now))
                    c.new_requests, c.backends, c.dirty = 0, {}, False
        return taken

    def _put_back(self, activity: Activity) -> None:
        with self._lock:
            c = self._pools.setdefault(activity.pool, _Counts())
            c.new_requests += activity.requests_total
            c.backends = {**activity.backend_last_request, **c.backends}
            c.dirty = True

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()
