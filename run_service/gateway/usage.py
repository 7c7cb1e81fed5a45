"""Per-key usage, added up in memory per key, pool and UTC hour and flushed to the store every few seconds.

Why batched: a store write per request would cost more than the request's own overhead; the store adds
deltas (``record_usage``), so every worker and instance flushes its own without coordination. A failed
flush keeps its counts for the next one. What is counted comes from each request's access record: one
request, the tokens of the backend's ``usage``, and backend seconds (GPU time) from the request sent to the end.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.access import Exchange
from gateway.periodic import PeriodicFlush
from spotgate.domain import KeyUsage
from spotgate.errors import SpotgateError
from spotgate.ports import Clock, RouteStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Sums:
    """One key, pool and hour's counts so far (added to in place: no new record per request)."""

    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    gpu_seconds: float = 0.0

    def add(self, requests: int, tokens_in: int, tokens_out: int, gpu_seconds: float) -> None:
        self.requests += requests
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out
        self.gpu_seconds += gpu_seconds


class UsageRecorder:
    def __init__(self, store: RouteStore, clock: Clock, interval: timedelta) -> None:
        self._store = store
        self._clock = clock
        self._periodic = PeriodicFlush("gateway-usage", interval, self.flush)
        self._pending: dict[tuple[str, str, datetime], _Sums] = {}
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
        self._merge((exchange.caller, exchange.pool, hour), 1, exchange.tokens_in or 0, exchange.tokens_out or 0,
                    exchange.backend_seconds)  # fmt: skip

    def _merge(
        self, slot: tuple[str, str, datetime], requests: int, tokens_in: int, tokens_out: int, gpu_seconds: float
    ) -> None:
        with self._lock:
            sums = self._pending.get(slot)
            if sums is None:
                sums = self._pending[slot] = _Sums()
            sums.add(requests, tokens_in, tokens_out, gpu_seconds)

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        taken = [KeyUsage(key, pool, hour, s.requests, s.tokens_in, s.tokens_out, s.gpu_seconds)
                 for (key, pool, hour), s in pending.items()]  # fmt: skip
        try:
            self._store.record_usage(taken)
        except SpotgateError as e:
            log.warning("usage flush failed; kept for the next one", extra={"error": str(e), "records": len(taken)})
            for (key, pool, hour), s in pending.items():
                self._merge((key, pool, hour), s.requests, s.tokens_in, s.tokens_out, s.gpu_seconds)
