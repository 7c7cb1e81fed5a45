"""The Firestore store's change feed: route and key listeners folded into full, deduplicated snapshots.

Why a class of its own: the listeners call back on Firestore's threads, so the feed owns the locking that
keeps deliveries ordered and stops them at ``close()``. The guarantees are documented in
``firestore_store``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from spotgate.adapters.codec import from_document
from spotgate.domain import ApiKey, Route
from spotgate.errors import PermanentError
from spotgate.ports import Snapshot

_log = logging.getLogger(__name__)


class FirestoreFeed:
    """Two collection listeners folded into one stream of full snapshots; a ``Subscription``."""

    def __init__(self, first: Snapshot, on_change: Callable[[Snapshot], None], next_version: Callable[[], int]) -> None:
        self._on_change = on_change
        self._next_version = next_version
        self._lock = threading.RLock()  # re-entrant: on_change may call close()
        self._closed = False
        self._delivering: threading.Thread | None = None
        self._routes, self._keys = first.routes, first.keys
        self._watches: list[Any] = []

    def listen(self, routes: Any, keys: Any) -> None:
        self._watches.append(routes.on_snapshot(self._on_routes))
        self._watches.append(keys.on_snapshot(self._on_keys))

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            inside_delivery = self._delivering is threading.current_thread()
        if inside_delivery:
            # A listener thread cannot join itself, so unsubscribing happens beside it; no delivery can
            # start any more because ``_closed`` is set.
            threading.Thread(target=self._unsubscribe, name="spotgate-firestore-unwatch", daemon=True).start()
        else:
            self._unsubscribe()  # outside the lock: a listener thread may be waiting for it to deliver

    def _unsubscribe(self) -> None:
        for watch in self._watches:
            watch.unsubscribe()

    def _on_routes(self, docs: list[Any], _changes: Any, _read_time: Any) -> None:
        try:
            routes = sorted((from_document(Route, d.to_dict()) for d in docs), key=lambda r: r.key)
        except PermanentError:
            _log.exception("unreadable route document; keeping the last snapshot")
            return
        self._deliver(routes=routes)

    def _on_keys(self, docs: list[Any], _changes: Any, _read_time: Any) -> None:
        try:
            keys = sorted((from_document(ApiKey, d.to_dict()) for d in docs), key=lambda k: k.key_id)
        except PermanentError:
            _log.exception("unreadable key document; keeping the last snapshot")
            return
        self._deliver(keys=keys)

    def _deliver(self, routes: list[Route] | None = None, keys: list[ApiKey] | None = None) -> None:
        with self._lock:
            new_routes = self._routes if routes is None else tuple(routes)
            new_keys = self._keys if keys is None else tuple(keys)
            if self._closed or (new_routes, new_keys) == (self._routes, self._keys):
                return
            self._routes, self._keys = new_routes, new_keys
            snapshot = Snapshot(routes=new_routes, keys=new_keys, version=self._next_version())
            self._delivering = threading.current_thread()
            try:
                self._on_change(snapshot)
            except Exception:
                _log.exception("route store change handler failed", extra={"version": snapshot.version})
            finally:
                self._delivering = None
