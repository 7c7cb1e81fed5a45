"""The routing table and API keys, followed live from the store and served from memory.

Why in memory: a request must never wait on the store, and the gateway must keep serving when the store is
unreachable. ``store.watch`` delivers a full ``Snapshot`` on start and after every change; each delivery is
indexed once (ready VM routes per pool, the overflow route per pool, keys by hash) and swapped in whole, so a
request sees one consistent version. Requests held for a VM wait on a condition that every delivery
signals, so they wake as soon as a VM is ready instead of polling.

Staleness: the table is *live* once a snapshot arrived and while the last store call succeeded. Anyone who
talks to the store (the activity flusher) reports failures here; ``/healthz`` shows ``stale`` until a call
succeeds again. The last table keeps being served either way.
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
        self, store: RouteStore, *, retry_every: float = 2.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._retry_every = retry_every
        self._monotonic = monotonic
        self._index = _Index(version=-1)
        self._changed = threading.Condition()
        self._loaded_at: float | None = None
        self._store_ok = False
        self._subscription: Subscription | None = None
        self._closed = threading.Event()

    # lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Subscribe now if the store answers, else keep retrying in the background."""
        if not self._subscribe():
            threading.Thread(target=self._keep_subscribing, name="gateway-table", daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        if self._subscription is not None:
            self._subscription.close()
        with self._changed:
            self._changed.notify_all()

    def _subscribe(self) -> bool:
        try:
            subscription = self._store.watch(self._apply)
        except SpotgateError as e:
            log.warning("routing table subscription failed; retrying", extra={"error": str(e)})
            self.report_store(ok=False)
            return False
        if self._closed.is_set():
            subscription.close()
        self._subscription = subscription
        return True

    def _keep_subscribing(self) -> None:
        while not self._closed.wait(self._retry_every) and not self._subscribe():
            pass

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
        return self.loaded and self._store_ok

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
