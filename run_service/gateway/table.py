"""The routing table and API keys, followed live from the store and served from memory.

Why in memory: a request must never wait on the store, and the gateway must keep serving when the store is
unreachable. ``store.watch`` delivers a full ``Snapshot`` on start and after every change; each delivery is
indexed once (ready VM routes per pool, the overflow route per pool, keys by hash) and swapped in whole, so a
request sees one consistent version. Requests held for a VM wait on a condition that every delivery
signals, so they wake as soon as a VM is ready instead of polling.

Staleness: the table is *live* once a snapshot arrived, while the last store call succeeded, and while the
last snapshot is younger than ``max_age``. A listener can die without a word (Firestore's watch thread has
been seen to stop after an unrecoverable stream error), and then revocations and route changes stop while
everything looks fine; a quiet store sends no snapshots either, so silence alone proves nothing. Hence
a watchdog resubscribes whenever the last snapshot is older than half of ``max_age`` (every subscription
starts with a full snapshot, so a quiet store refreshes it and a dead listener is replaced); if that fails,
the table turns stale once ``max_age`` has passed. Anyone else who talks to the store (the activity
flusher) reports failures here too; ``/healthz`` shows ``stale`` until things recover. The last table keeps
being served either way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from spotgate.domain import ApiKey, BackendKind, Route, RouteState
from spotgate.errors import SpotgateError
from spotgate.ports import RouteStore, Snapshot, Subscription

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Index:
    version: int
    ready: dict[str, tuple[Route, ...]] = field(default_factory=dict)
    overflow: dict[str, Route] = field(default_factory=dict)
    keys: dict[str, ApiKey] = field(default_factory=dict)
    routes: int = 0


def _index(snapshot: Snapshot) -> _Index:
    ready: dict[str, list[Route]] = {}
    overflow: dict[str, Route] = {}
    for route in snapshot.routes:
        if route.kind is BackendKind.OVERFLOW and route.state is not RouteState.DOWN:
            overflow[route.pool] = route
        elif route.kind is BackendKind.VM and route.state is RouteState.READY:
            ready.setdefault(route.pool, []).append(route)
    return _Index(
        snapshot.version,
        {pool: tuple(routes) for pool, routes in ready.items()},
        overflow,
        {key.secret_hash: key for key in snapshot.keys},
        len(snapshot.routes),
    )


class LiveTable:
    """The current routes and keys; ``start`` subscribes, ``close`` unsubscribes."""

    def __init__(
        self,
        store: RouteStore,
        *,
        retry_every: float = 2.0,
        max_age: float = 120.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._retry_every = retry_every
        self._max_age = max_age
        self._monotonic = monotonic
        self._index = _Index(version=-1)
        self._changed = threading.Condition()
        self._loaded_at: float | None = None
        self._store_ok = False
        self._subscription: Subscription | None = None
        self._closed = threading.Event()

    # lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Subscribe now if the store answers (else in the background), and start the watchdog."""
        subscribed = self._subscribe()
        threading.Thread(target=self._watchdog, args=(subscribed,), name="gateway-table", daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        if self._subscription is not None:
            self._subscription.close()
        with self._changed:
            self._changed.notify_all()

    def _subscribe(self) -> bool:
        """A new subscription in place of the current one (closed once the new one delivered). False: failed."""
        try:
            subscription = self._store.watch(self._apply)
        except SpotgateError as e:
            log.warning("routing table subscription failed; retrying", extra={"error": str(e)})
            self.report_store(ok=False)
            return False
        previous, self._subscription = self._subscription, subscription
        if previous is not None:
            previous.close()
        if self._closed.is_set():
            subscription.close()
        return True

    def _watchdog(self, subscribed: bool) -> None:
        """Subscribe until it works; then resubscribe whenever the last snapshot is older than max_age / 2."""
        while not subscribed and not self._closed.wait(self._retry_every):
            subscribed = self._subscribe()
        while not self._closed.wait(min(self._retry_every, self._max_age / 4)):
            if self.snapshot_age > self._max_age / 2:
                log.info("routing table quiet; resubscribing", extra={"snapshot_age": round(self.snapshot_age, 1)})
                self._subscribe()

    @property
    def snapshot_age(self) -> float:
        """Seconds since the last snapshot arrived (infinite before the first)."""
        return float("inf") if self._loaded_at is None else self._monotonic() - self._loaded_at

    def _apply(self, snapshot: Snapshot) -> None:
        index = _index(snapshot)
        with self._changed:
            self._index = index
            self._loaded_at = self._monotonic()
            self._store_ok = True
            self._changed.notify_all()

    # health ----------------------------------------------------------------------------------------------
    def report_store(self, *, ok: bool) -> None:
        """Record the outcome of a store call made by another part of the gateway."""
        self._store_ok = ok

    @property
    def loaded(self) -> bool:
        return self._loaded_at is not None

    @property
    def live(self) -> bool:
        return self.loaded and self._store_ok and self.snapshot_age <= self._max_age

    def health(self) -> dict[str, object]:
        index = self._index
        age = None if self._loaded_at is None else round(self._monotonic() - self._loaded_at, 3)
        status = "live" if self.live else ("stale" if self.loaded else "loading")
        return {"status": status, "version": index.version, "routes": index.routes, "seconds_since_update": age}

    # reads -----------------------------------------------------------------------------------------------
    @property
    def version(self) -> int:
        return self._index.version

    def ready(self, pool: str) -> tuple[Route, ...]:
        """The pool's VM routes in state ``ready``."""
        return self._index.ready.get(pool, ())

    def overflow(self, pool: str) -> Route | None:
        """The pool's overflow route, unless it is ``down``."""
        return self._index.overflow.get(pool)

    def key_by_hash(self, secret_hash: str) -> ApiKey | None:
        return self._index.keys.get(secret_hash)

    def wait_for_change(self, since_version: int, timeout: float) -> bool:
        """Block until the table's version differs from ``since_version``; False after ``timeout`` seconds."""
        deadline = self._monotonic() + timeout
        with self._changed:
            while self._index.version == since_version and not self._closed.is_set():
                remaining = deadline - self._monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return self._index.version != since_version
