"""This gateway instance's traffic per pool and per VM, flushed to the store every few seconds, never per request.

The control plane reads it to keep a pool awake while it is used (``last_request_at``, and per VM when the
last request *finished*), to scale toward ``max_ready`` (in flight per pool) and to never stop a VM that
still carries a stream (in flight per VM). Cloud Run runs several gateway instances, so each writes its
own record (``GatewayActivity``, keyed by pool and this instance's id) whole at every flush, with an expiry;
the store sums the live records, so no instance overwrites another's count.

A pool's record is rewritten at every flush while anything is in flight there, even if nothing changed:
a steady long stream must stay visible (and its record alive) for as long as it runs. An idle, unchanged
pool is not rewritten; its last record expires and counts zero. A failed flush is retried at the next
interval (records are whole, so nothing is lost) and marks the routing table stale.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway.periodic import PeriodicFlush
from spotgate.domain import GatewayActivity
from spotgate.errors import SpotgateError
from spotgate.ports import Clock, RouteStore

log = logging.getLogger(__name__)

MIN_EXPIRY = timedelta(seconds=15)  # a record outlives three flush intervals, and never less than this


@dataclass(slots=True)
class _Counts:
    inflight: int = 0
    backend_inflight: dict[str, int] = field(default_factory=dict)
    last_request_at: datetime | None = None
    backend_last_request: dict[str, datetime] = field(default_factory=dict)
    backend_last_finished: dict[str, datetime] = field(default_factory=dict)
    requests_total: int = 0
    dirty: bool = False


class ActivityRecorder:
    """Counts requests of this gateway instance; ``flush`` writes one record per pool that needs it."""

    def __init__(
        self,
        store: RouteStore,
        clock: Clock,
        interval: timedelta,
        on_store_result: Callable[[bool], None],
        *,
        gateway_id: str | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._periodic = PeriodicFlush("gateway-activity", interval, self.flush)
        self._expiry = max(3 * interval, MIN_EXPIRY)
        self._report = on_store_result
        self.gateway_id = gateway_id or uuid.uuid4().hex[:16]
        self._pools: dict[str, _Counts] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        self._periodic.start()

    def close(self) -> None:
        """Stop the flusher and flush once more, so a shutting-down instance loses no counts."""
        self._periodic.close()

    def arrived(self, pool: str) -> None:
        """A request for ``pool`` arrived (served or not: demand is what keeps a pool awake)."""
        now = self._clock.now()
        with self._lock:
            counts = self._counts(pool)
            counts.last_request_at = now
            counts.requests_total += 1
            counts.dirty = True

    @contextmanager
    def waiting(self, pool: str) -> Iterator[None]:
        """Count a request as in flight (for the pool, on no VM yet) while the gateway holds it for a VM."""
        with self._lock:
            counts = self._counts(pool)
            counts.inflight += 1
            counts.dirty = True
        try:
            yield
        finally:
            self.finished(pool)

    def started(self, pool: str, backend: str) -> None:
        """A request is now in flight on ``backend`` (a VM name, or the overflow service)."""
        now = self._clock.now()
        with self._lock:
            counts = self._counts(pool)
            counts.inflight += 1
            counts.backend_inflight[backend] = counts.backend_inflight.get(backend, 0) + 1
            counts.backend_last_request[backend] = now
            counts.dirty = True

    def finished(self, pool: str, backend: str | None = None) -> None:
        """A request left ``pool`` (and ``backend``, if it had reached one): idleness counts from now."""
        now = self._clock.now()
        with self._lock:
            counts = self._counts(pool)
            counts.inflight = max(0, counts.inflight - 1)
            if backend is not None:
                left = counts.backend_inflight.get(backend, 0) - 1
                if left > 0:
                    counts.backend_inflight[backend] = left
                else:
                    counts.backend_inflight.pop(backend, None)
                counts.backend_last_finished[backend] = now
            counts.dirty = True

    def _counts(self, pool: str) -> _Counts:
        """The pool's counts (made on first use: not a new, discarded ``_Counts`` per call). Call under the lock."""
        counts = self._pools.get(pool)
        if counts is None:
            counts = self._pools[pool] = _Counts()
        return counts

    def flush(self) -> None:
        """Write the record of every pool that changed or has requests in flight."""
        taken = self._take()
        for done, record in enumerate(taken):
            try:
                self._store.record_activity(record)
            except SpotgateError as e:
                log.warning("activity flush failed", extra={"pool": record.pool, "error": str(e)})
                self._mark_dirty(r.pool for r in taken[done:])
                self._report(False)
                return
        if taken:
            self._report(True)

    def _take(self) -> list[GatewayActivity]:
        now = self._clock.now()
        taken = []
        with self._lock:
            for pool, c in self._pools.items():
                if c.dirty or c.inflight > 0:
                    taken.append(self._record(pool, c, now))
                    c.dirty = False
        return taken

    def _record(self, pool: str, c: _Counts, now: datetime) -> GatewayActivity:
        return GatewayActivity(
            pool=pool,
            gateway=self.gateway_id,
            at=now,
            expires_at=now + self._expiry,
            inflight=c.inflight,
            backend_inflight=dict(c.backend_inflight),
            last_request_at=c.last_request_at,
            backend_last_request=dict(c.backend_last_request),
            backend_last_finished=dict(c.backend_last_finished),
            requests_total=c.requests_total,
        )

    def _mark_dirty(self, pools: Iterable[str]) -> None:
        with self._lock:
            for pool in pools:
                self._pools[pool].dirty = True
