"""The SQLite store's change feed: a daemon thread that polls the version counter and sends snapshots.

Why polling: SQLite has no cross-process notifications, and reading one counter row every half second
is cheap. The guarantees are documented in ``sqlite_store``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from spotgate.adapters.codec import from_document
from spotgate.adapters.sqlite_file import translated
from spotgate.domain import ApiKey, Route
from spotgate.errors import PermanentError, UnavailableError
from spotgate.ports import Snapshot

_log = logging.getLogger(__name__)


class SqliteFeed:
    """Polls ``meta.version`` on its own connection; a ``Subscription``."""

    def __init__(self, path: Path, on_change: Callable[[Snapshot], None], *, interval: float, seen: int) -> None:
        self._path = path
        self._on_change = on_change
        self._interval = interval
        self._seen = seen  # the version the subscriber already has
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, conn: sqlite3.Connection) -> None:
        """Start polling on ``conn``, which the feed now owns and closes when it stops."""
        self._thread = threading.Thread(target=self._run, args=(conn,), name="spotgate-sqlite-feed", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and threading.current_thread() is not thread:
            thread.join()

    def _run(self, conn: sqlite3.Connection) -> None:
        try:
            while not self._stop.wait(self._interval):
                self._poll(conn)
        finally:
            conn.close()

    def _poll(self, db: sqlite3.Connection) -> None:
        try:
            with translated(self._path):
                version = read_version(db)
                if version == self._seen:
                    return
                snapshot = read_snapshot(db)
        except UnavailableError as e:
            _log.warning("route store poll failed; keeping the last snapshot", extra={"error": str(e)})
            return
        except PermanentError:
            self._seen = version  # skip this state rather than log it every interval; the next change retries
            _log.exception("unreadable routing table; keeping the last snapshot", extra={"version": version})
            return
        self._seen = snapshot.version
        if not self._stop.is_set():
            try:
                self._on_change(snapshot)
            except Exception:
                _log.exception("route store change handler failed", extra={"version": snapshot.version})


def read_version(db: sqlite3.Connection) -> int:
    """How many route or key changes the file has seen."""
    row = db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
    return int(row[0])


def read_snapshot(db: sqlite3.Connection) -> Snapshot:
    """Every route and key with the version they belong to, read in one transaction."""
    db.execute("BEGIN")
    try:
        routes = [from_document(Route, json.loads(d)) for (d,) in db.execute("SELECT doc FROM routes ORDER BY key")]
        keys = [from_document(ApiKey, json.loads(d)) for (d,) in db.execute("SELECT doc FROM keys ORDER BY key_id")]
        return Snapshot(routes=tuple(routes), keys=tuple(keys), version=read_version(db))
    finally:
        db.execute("COMMIT")
