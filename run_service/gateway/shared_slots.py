"""A key's concurrency limit shared by every gateway worker and instance, through the store.

Why: per worker, ``max_concurrent`` multiplies with workers and instances. Every ``interval`` each worker
publishes its requests in flight per key (``RouteStore.put_key_inflight``, valid for three intervals, so a
dead worker stops counting) and reads the sum of everyone else's (``key_inflight``); the limiter refuses a
request when its own count plus the others' reaches the limit. Precision: the others' counts are up to one
interval old, so within an interval several instances may together admit up to the limit each once more;
a request that ends early frees its slot elsewhere only at the next flush. A failed flush keeps the last
known counts.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from gateway.limits import KeyLimiter
from gateway.periodic import PeriodicFlush
from spotgate.errors import SpotgateError
from spotgate.ports import Clock, RouteStore

log = logging.getLogger(__name__)


class SlotSharing:
    def __init__(self, store: RouteStore, clock: Clock, limiter: KeyLimiter, interval: timedelta) -> None:
        self._store = store
        self._clock = clock
        self._limiter = limiter
        self._interval = interval
        self.instance = f"gw-{uuid.uuid4().hex[:12]}"
        self._periodic = PeriodicFlush("gateway-slots", interval, self.flush, last=self._withdraw)

    def start(self) -> None:
        self._periodic.start()

    def close(self) -> None:
        """Stop, and withdraw this worker's counts so the others stop counting them at once."""
        self._periodic.close()

    def _withdraw(self) -> None:
        try:
            self._store.put_key_inflight(self.instance, {}, self._clock.now())
        except SpotgateError as e:
            log.warning("could not withdraw in-flight counts", extra={"error": str(e)})

    def flush(self) -> None:
        now = self._clock.now()
        try:
            self._store.put_key_inflight(self.instance, self._limiter.inflight_counts(), now + 3 * self._interval)
            self._limiter.set_elsewhere(self._store.key_inflight(now, exclude=self.instance))
        except SpotgateError as e:
            log.warning("in-flight counts not shared this time", extra={"error": str(e)})
