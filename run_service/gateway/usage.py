"""Per-key usage, added up in memory per key, pool and UTC hour and flushed to the store every few seconds.

Why batched: a store write per request would cost more than the request's own overhead; the store adds
deltas (``record_usage``), so every worker and instance flushes its own without coordination. A failed
flush keeps its counts for the next one. What is counted comes from each request's access record: one
request, the tokens of the backend's ``usage``, and backend seconds (GPU time) from the request sent to the end.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from datetime import datetime, timedelta

from gateway.access import Exchange
from gateway.periodic import PeriodicFlush
from spotgate.domain import KeyUsage
from spotgate.errors import SpotgateError
from spotgate.ports import Clock, RouteStore

log = logging.getLogger(__name__)


class UsageRecorder:
    def __init__(self, store: RouteStore, clock: Clock, interval: timedelta) -> None:
        self._store = store
        self._clock = clock
        self._periodic = PeriodicFlush("gateway-usage", interval, self.flush)
        self._pending: dict[tuple[str, str, datetime], KeyUsage] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        self._periodic.start()

    def close(self) -> None:
        """Stop the flusher and flush once more."""
        self._periodic.close()

    def add(self, exchange: Exchange) -> None:
        """Count a finished request that reached a pool (callers refused before that are not usage)."""
        if exchange.caller is None or exchange.pool is None:
            return
        hour = self._clock.now().replace(minute=0, second=0, microsecond=0)
        delta = KeyUsage(exchange.caller, exchange.pool, hour, 1, exchange.tokens_in or 0, exchange.tokens_out or 0,
                         exchange.backend_seconds)  # fmt: skip
        self._merge(delta)

    def _merge(self, delta: KeyUsage) -> None:
        slot = (delta.key_id, delta.pool, delta.hour)
        with self._lock:
            known = self._pending.get(slot)
            self._pending[slot] = delta if known is None else _sum(known, delta)

    def flush(self) -> None:
        with self._lock:
            taken, self._pending = list(self._pending.values()), {}
        if not taken:
            return
        try:
            self._store.record_usage(taken)
        except SpotgateError as e:
            log.warning("usage flush failed; kept for the next one", extra={"error": str(e), "records": len(taken)})
            for delta in taken:
                self._merge(delta)


def _sum(a: KeyUsage, b: KeyUsage) -> KeyUsage:
    return replace(
        a,
        requests=a.requests + b.requests,
        tokens_in=a.tokens_in + b.tokens_in,
        tokens_out=a.tokens_out + b.tokens_out,
        gpu_seconds=a.gpu_seconds + b.gpu_seconds,
    )
