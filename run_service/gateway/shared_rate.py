"""A key's request rate shared by every gateway worker and instance, through the store.

Why: a per-worker bucket lets N workers or instances admit N times a key's ``rpm``. The store keeps one
token bucket per key (``RouteStore.take_key_tokens``: refilled at ``rpm``/60 per second up to a burst of
``rpm``/5, taken from in a transaction). A worker leases about a second's worth of tokens at a time and
serves requests from its lease; tokens left when a lease expires (``lease_seconds``) are dropped, never
returned, so sharing can only under-admit.

Precision: over any 60 s, at most burst + 60 s of refill = 1.2 x ``rpm`` requests are admitted across all
instances; a worker whose lease runs dry while another's is unused may refuse early by up to one lease.
The cost is one store transaction per lease (per request for keys under 60 rpm), on that key's requests
only. If the store cannot be reached, ``take`` says so and the caller falls back to its local bucket.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from spotgate.domain import ApiKey
from spotgate.errors import SpotgateError
from spotgate.ports import Clock, RouteStore

log = logging.getLogger(__name__)


def rate_of(key: ApiKey) -> tuple[float, float]:
    """``(tokens per second, burst)`` of a key's bucket: at most 1.2 x rpm in any minute."""
    return key.rpm / 60.0, max(1.0, key.rpm / 5.0)


@dataclass(slots=True)
class _Lease:
    tokens: int
    expires: float


class SharedRate:
    def __init__(
        self, store: RouteStore, clock: Clock, monotonic: Callable[[], float], lease_seconds: float = 1.0
    ) -> None:
        self._store = store
        self._clock = clock
        self._monotonic = monotonic
        self._lease_seconds = lease_seconds
        self._leases: dict[str, _Lease] = {}
        self._lock = threading.Lock()

    def take(self, key: ApiKey) -> bool | None:
        """True: a token for ``key``; False: its shared bucket is empty; None: the store failed."""
        if self._from_lease(key.key_id):
            return True
        rate, burst = rate_of(key)
        want = max(1, math.ceil(rate * self._lease_seconds))
        try:
            got = self._store.take_key_tokens(key.key_id, rate, burst, want, self._clock.now())
        except SpotgateError as e:
            log.warning("shared rate unavailable; using the local limit", extra={"key": key.key_id, "error": str(e)})
            return None
        if got == 0:
            return False
        with self._lock:
            self._leases[key.key_id] = _Lease(got - 1, self._monotonic() + self._lease_seconds)
        return True

    def _from_lease(self, key_id: str) -> bool:
        with self._lock:
            lease = self._leases.get(key_id)
            if lease is None or lease.tokens <= 0 or lease.expires <= self._monotonic():
                return False
            lease.tokens -= 1
            return True
