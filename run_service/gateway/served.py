"""Where each request of a pool was served, counted per UTC minute and flushed to the store every few seconds.

Why: ``spotgate report`` gives a deployed fleet the figures ``spotgate simulate`` gives a simulated one, and
"served by a ready VM, by the overflow, after a hold, or refused" exists only here, at the end of a request.
Batched like per-key usage: the store adds deltas (``record_served``), so every worker and instance flushes
its own; a failed flush keeps its counts for the next one.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import datetime, timedelta

from gateway.access import Exchange
from gateway.periodic import PeriodicFlush
from spotgate.domain import ServedCount
from spotgate.errors import SpotgateError
from spotgate.ports import Clock, RouteStore

log = logging.getLogger(__name__)


def served_kind(exchange: Exchange, status: int) -> str | None:
    """The ``SERVED_KINDS`` value of a finished request; None when it never was the pool's to serve (refused
    before routing, or a client error without a backend)."""
    if exchange.pool is None:
        return None
    if exchange.kind == "overflow":
        return "overflow"
    if exchange.kind == "vm":
        return "held_then_vm" if exchange.held else "vm"
    return "refused_503" if status == 503 else None


class ServedRecorder:
    def __init__(self, store: RouteStore, clock: Clock, interval: timedelta) -> None:
        self._store = store
        self._clock = clock
        self._periodic = PeriodicFlush("gateway-served", interval, self.flush)
        self._pending: Counter[tuple[str, datetime, str]] = Counter()
        self._lock = threading.Lock()

    def start(self) -> None:
        self._periodic.start()

    def close(self) -> None:
        """Stop the flusher and flush once more."""
        self._periodic.close()

    def add(self, exchange: Exchange, status: int) -> None:
        kind = served_kind(exchange, status)
        if kind is None or exchange.pool is None:
            return
        minute = self._clock.now().replace(second=0, microsecond=0)
        with self._lock:
            self._pending[exchange.pool, minute, kind] += 1

    def flush(self) -> None:
        with self._lock:
            taken, self._pending = self._pending, Counter()
        if not taken:
            return
        try:
            self._store.record_served([ServedCount(pool, minute, kind, n) for (pool, minute, kind), n in taken.items()])
        except SpotgateError as e:
            log.warning("served flush failed; kept for the next one", extra={"error": str(e), "records": len(taken)})
            with self._lock:
                self._pending.update(taken)
