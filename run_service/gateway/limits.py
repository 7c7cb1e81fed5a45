"""Per-key request rate and concurrency limits.

The rate (``rpm``) is shared by every worker and instance through the store when ``shared`` is given
(``gateway.shared_rate``: leased tokens of one bucket per key); otherwise, and whenever the store cannot be
reached, each worker enforces it alone with the same bucket shape (a burst of ``rpm``/5, refilled at
``rpm``/60 per second). ``max_concurrent`` counts this worker's requests plus the other workers' and
instances' as last shared through the store (``gateway.shared_slots``, one flush interval old).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.errors import rate_limited
from gateway.shared_rate import SharedRate, rate_of
from spotgate.domain import ApiKey


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class Release:
    """Returns one concurrency slot when called; calling it again does nothing."""

    __slots__ = ("_done", "_return")

    def __init__(self, return_slot: Callable[[], None]) -> None:
        self._return = return_slot
        self._done = False

    def __call__(self) -> None:
        if not self._done:
            self._done = True
            self._return()


class Admission:
    """What an admitted request holds until it ends (a key's slot, body bytes); ``release`` frees it all once.

    No lock (one per request was a measurable share of the request's cost under gevent): ``list.append``
    and ``list.pop`` are atomic, so each release runs once even when two threads release together.
    """

    __slots__ = ("_releases",)

    def __init__(self) -> None:
        self._releases: list[Callable[[], None]] = []

    def hold(self, release: Callable[[], None]) -> None:
        """Add something to free when the request ends."""
        self._releases.append(release)

    def release(self) -> None:
        releases = self._releases
        while releases:
            try:
                release = releases.pop(0)
            except IndexError:  # another thread took the last one
                return
            release()


class KeyLimiter:
    """Admits or refuses requests per key; ``acquire`` raises ApiError 429 with ``Retry-After``."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic, shared: SharedRate | None = None) -> None:
        self._monotonic = monotonic
        self._shared = shared
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}
        self._inflight: dict[str, int] = {}
        self._elsewhere: dict[str, int] = {}  # other workers' and instances' in flight (gateway.shared_slots)

    def acquire(self, key: ApiKey) -> Release:
        """Take a concurrency slot and a rate token for ``key``; the Release gives the slot back."""
        with self._lock:
            running = self._inflight.get(key.key_id, 0)
            if key.max_concurrent and running + self._elsewhere.get(key.key_id, 0) >= key.max_concurrent:
                raise rate_limited(f"This key allows {key.max_concurrent} concurrent requests.", 1)
            self._inflight[key.key_id] = running + 1
        release = Release(lambda: self._return_slot(key.key_id))
        try:
            self.take(key)  # outside the lock: a shared take may wait on the store
        except BaseException:
            release()
            raise
        return release

    def take(self, key: ApiKey) -> None:
        """Take only a rate token for ``key`` (no concurrency slot); raises ApiError 429 when its rpm is spent."""
        if key.rpm:
            self._take_token(key)

    def _take_token(self, key: ApiKey) -> None:
        shared = None if self._shared is None else self._shared.take(key)
        if shared is False:
            raise rate_limited(f"This key allows {key.rpm} requests per minute.", _retry_after(key))
        if shared is None:
            with self._lock:
                self._take_local_token(key)

    def _take_local_token(self, key: ApiKey) -> None:
        now = self._monotonic()
        rate, burst = rate_of(key)
        bucket = self._buckets.get(key.key_id)
        if bucket is None:
            bucket = self._buckets[key.key_id] = _Bucket(burst, now)
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens < 1.0:
            wait = math.ceil((1.0 - bucket.tokens) / rate)
            raise rate_limited(f"This key allows {key.rpm} requests per minute.", min(60, max(1, wait)))
        bucket.tokens -= 1.0

    def inflight_counts(self) -> dict[str, int]:
        """This worker's requests in flight per key."""
        with self._lock:
            return dict(self._inflight)

    def set_elsewhere(self, counts: dict[str, int]) -> None:
        """The other workers' and instances' requests in flight per key, as last read from the store."""
        self._elsewhere = counts

    def _return_slot(self, key_id: str) -> None:
        with self._lock:
            left = self._inflight.get(key_id, 1) - 1
            if left > 0:
                self._inflight[key_id] = left
            else:
                self._inflight.pop(key_id, None)


def _retry_after(key: ApiKey) -> int:
    """About one token's refill time, within what SDKs honour."""
    rate, _ = rate_of(key)
    return min(60, max(1, math.ceil(1.0 / rate)))
