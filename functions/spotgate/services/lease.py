"""A pool's reconcile lease, held for one round and renewed while the round runs.

The lease (a store document with a TTL) serialises reconciles of one pool across workers. A round may take
longer than the TTL: a hundred start calls one after another, a rate-limit backoff, a Cloud Run update that
GCP answers in up to two minutes. Without renewal another worker would take the expired lease and plan the
same pool at the same time (two starts for one gap). So a keeper thread renews it every third of the TTL
until the round ends; if a renewal is refused (the lease expired and someone else took it), ``lost`` turns
true and the round stops issuing actions.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import timedelta
from types import TracebackType

from spotgate.errors import ConflictError, SpotgateError
from spotgate.ports import Clock, RouteStore

log = logging.getLogger(__name__)


class PoolLease:
    """Context manager: acquire on enter (raises ConflictError when held elsewhere), renew, release on exit."""

    def __init__(
        self, store: RouteStore, clock: Clock, pool: str, ttl: timedelta, *, patience: timedelta = timedelta(0)
    ) -> None:
        self._store = store
        self._clock = clock
        self._pool = pool
        self._ttl = ttl
        self._patience = patience.total_seconds()
        self._holder = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def __enter__(self) -> PoolLease:
        deadline = time.monotonic() + self._patience
        while not self._store.acquire_lease(self._pool, self._holder, self._clock.now(), self._ttl):
            if time.monotonic() >= deadline:
                raise ConflictError(f"pool {self._pool} is being reconciled by another worker")
            time.sleep(0.05)
        self._thread = threading.Thread(target=self._renew, name=f"lease-{self._pool}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._store.release_lease(self._pool, self._holder)

    def check(self) -> None:
        """Raise ConflictError if the lease was lost: the caller must not issue more actions."""
        if self.lost:
            raise ConflictError(f"lost the lease of pool {self._pool} during a long round")

    def _renew(self) -> None:
        interval = self._ttl.total_seconds() / 3
        while not self._stop.wait(interval):
            try:
                renewed = self._store.acquire_lease(self._pool, self._holder, self._clock.now(), self._ttl)
            except SpotgateError as e:  # the store blinked: try again at the next interval, within the TTL
                log.warning("lease renewal failed: %s", e, extra={"pool": self._pool})
                continue
            if not renewed:
                self.lost = True
                log.error("lease lost during a round", extra={"pool": self._pool})
                return
