"""The RouteStore on one SQLite file: what local runs, the sandbox and tests use instead of Firestore.

Why SQLite: the functions and the gateway are separate processes on one machine in local runs, and a WAL
database file gives them transactions, a shared lease and a change feed with no server to run. Every write
that needs a read-compare-write (pool state generation, activity merge, schema) runs under ``BEGIN
IMMEDIATE``, which takes SQLite's single write lock up front, so two processes cannot interleave; the lease
is one conditional upsert. Contention waits up to ``busy_timeout``; after that (and on I/O errors) callers
get ``UnavailableError``, a transient error they may retry.

Routes and keys are listed (and snapshotted) sorted by ``Route.key`` and ``key_id`` in both stores, so equal
tables compare equal.

Change feed guarantees (``watch``):
- ``on_change`` is called once with a full ``Snapshot`` before ``watch`` returns, then from a daemon thread
  whenever the ``meta`` version counter has moved. The counter is bumped in the same transaction as every
  route or key write that changed a row, so a delivered snapshot is always consistent with its version.
- At least once and coalesced: every committed change is reflected in a later delivery, but several writes
  between two polls (``poll_interval``) produce one snapshot of the latest state, and a delivery may equal
  an earlier one (a write and its undo). Every delivery is a full snapshot, never a diff.
- Eventually consistent: a change is seen within about ``poll_interval``. If the file is briefly
  unreadable the poll is retried on the next interval and the caller keeps its last snapshot.
- ``close()`` stops the thread and waits for it; no call starts after ``close()`` returns (unless
  ``close`` is called from inside ``on_change`` itself, which cannot wait for its own thread).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from spotgate.adapters.activity_merge import prune_cutoff, sum_activity
from spotgate.adapters.codec import format_time, from_document, parse_time, to_document
from spotgate.adapters.key_bucket import refill_and_take
from spotgate.adapters.sqlite_feed import SqliteFeed, read_snapshot
from spotgate.adapters.sqlite_file import connect, translated
from spotgate.domain import (
    HISTORY_RETENTION,
    Activity,
    ApiKey,
    DecisionRecord,
    GatewayActivity,
    HistoryRecord,
    KeyUsage,
    PoolState,
    Route,
    ServedCount,
)
from spotgate.errors import ConflictError, PermanentError
from spotgate.ports import Snapshot, Subscription


class SqliteStore:
    """``RouteStore`` over a SQLite file shared by every process of a local deployment."""

    def __init__(self, path: Path, *, events_limit: int = 500, poll_interval: float = 0.5) -> None:
        self._path = Path(path)
        self._events_limit = events_limit
        self._poll_interval = poll_interval
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._conn_pid = 0

    def close(self) -> None:
        """Close this process's connection (watch subscriptions have their own and close separately)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # routes
    def list_routes(self, pool: str | None = None) -> list[Route]:
        with self._read() as db:
            if pool is None:
                rows = db.execute("SELECT doc FROM routes ORDER BY key").fetchall()
            else:
                rows = db.execute("SELECT doc FROM routes WHERE pool = ? ORDER BY key", (pool,)).fetchall()
        return [from_document(Route, json.loads(doc)) for (doc,) in rows]

    def put_routes(self, routes: Sequence[Route]) -> None:
        rows = [(r.key, r.pool, _dump(r)) for r in routes]
        with self._write() as db:
            before = db.total_changes
            db.executemany(
                "INSERT INTO routes (key, pool, doc) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE"
                " SET pool = excluded.pool, doc = excluded.doc WHERE routes.doc != excluded.doc",
                rows,
            )
            _bump_version_if_changed(db, before)

    def delete_routes(self, keys: Sequence[str]) -> None:
        with self._write() as db:
            before = db.total_changes
            db.executemany("DELETE FROM routes WHERE key = ?", [(k,) for k in keys])
            _bump_version_if_changed(db, before)

    # pool state
    def get_pool_state(self, pool: str) -> PoolState:
        with self._read() as db:
            row = db.execute("SELECT generation, doc FROM pool_state WHERE pool = ?", (pool,)).fetchone()
        if row is None:
            return PoolState(pool=pool)
        return replace(from_document(PoolState, json.loads(row[1])), generation=row[0])

    def commit_pool_state(self, state: PoolState, expected_generation: int) -> PoolState:
        committed = replace(state, generation=expected_generation + 1)
        with self._write() as db:
            row = db.execute("SELECT generation FROM pool_state WHERE pool = ?", (state.pool,)).fetchone()
            stored = 0 if row is None else int(row[0])
            if stored != expected_generation:
                raise ConflictError(
                    f"pool {state.pool!r} is at generation {stored}, not {expected_generation}; reload and retry"
                )
            db.execute(
                "INSERT INTO pool_state (pool, generation, doc) VALUES (?, ?, ?) ON CONFLICT (pool) DO UPDATE"
                " SET generation = excluded.generation, doc = excluded.doc",
                (state.pool, committed.generation, _dump(committed)),
            )
        return committed

    # lease
    def acquire_lease(self, pool: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        # One conditional upsert: SQLite runs a statement atomically, so no separate read is needed.
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO leases (pool, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT (pool) DO UPDATE"
                " SET holder = excluded.holder, expires_at = excluded.expires_at"
                " WHERE leases.holder = excluded.holder OR leases.expires_at <= ?",
                (pool, holder, _epoch(now + ttl), _epoch(now)),
            )
            return cursor.rowcount == 1

    def release_lease(self, pool: str, holder: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM leases WHERE pool = ? AND holder = ?", (pool, holder))

    # activity
    def record_activity(self, record: GatewayActivity) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO gateway_activity (pool, gateway, expires_at, doc) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (pool, gateway) DO UPDATE SET expires_at = excluded.expires_at, doc = excluded.doc",
                (record.pool, record.gateway, _epoch(record.expires_at), _dump(record)),
            )

    def get_activity(self, pool: str, now: datetime) -> Activity:
        with self._read() as db:
            rows = db.execute("SELECT doc FROM gateway_activity WHERE pool = ?", (pool,)).fetchall()
        return sum_activity(pool, (from_document(GatewayActivity, json.loads(doc)) for (doc,) in rows), now)

    # audit trail
    def append_events(self, records: Sequence[DecisionRecord]) -> None:
        with self._write() as db:
            db.executemany(
                "INSERT INTO events (pool, at, doc) VALUES (?, ?, ?)",
                [(r.pool, format_time(r.at), _dump(r)) for r in records],
            )
            for pool in {r.pool for r in records}:
                db.execute(
                    "DELETE FROM events WHERE pool = ? AND id NOT IN"
                    " (SELECT id FROM events WHERE pool = ? ORDER BY at DESC, id DESC LIMIT ?)",
                    (pool, pool, self._events_limit),
                )

    def recent_events(self, pool: str | None = None, limit: int = 50) -> list[DecisionRecord]:
        where, args = ("", ()) if pool is None else ("WHERE pool = ?", (pool,))
        query = f"SELECT doc FROM events {where} ORDER BY at DESC, id DESC LIMIT ?"  # noqa: S608 -- fixed text
        with self._read() as db:
            rows = db.execute(query, (*args, limit)).fetchall()
        return [from_document(DecisionRecord, json.loads(doc)) for (doc,) in rows]

    # history
    def append_history(self, records: Sequence[HistoryRecord]) -> None:
        if not records:
            return
        with self._write() as db:
            db.executemany(
                "INSERT INTO history (pool, at, doc) VALUES (?, ?, ?)",
                [(r.pool, format_time(r.at), _dump(r)) for r in records],
            )
            # The writer prunes what is past retention (Firestore does this with a TTL policy on ``delete_at``).
            newest = max(r.at for r in records)
            db.execute("DELETE FROM history WHERE at < ?", (format_time(newest - HISTORY_RETENTION),))

    def list_history(self, pool: str, since: datetime) -> list[HistoryRecord]:
        with self._read() as db:
            rows = db.execute(
                "SELECT doc FROM history WHERE pool = ? AND at >= ? ORDER BY at, id", (pool, format_time(since))
            ).fetchall()
        return [from_document(HistoryRecord, json.loads(doc)) for (doc,) in rows]

    def record_served(self, counts: Sequence[ServedCount]) -> None:
        with self._write() as db:
            db.executemany(
                "INSERT INTO served VALUES (?, ?, ?, ?) ON CONFLICT (pool, minute, kind) DO UPDATE SET"
                " requests = requests + excluded.requests",
                [(c.pool, format_time(_minute(c.minute)), c.kind, c.requests) for c in counts],
            )
            if counts:
                newest = max(c.minute for c in counts)
                db.execute("DELETE FROM served WHERE minute < ?", (format_time(newest - HISTORY_RETENTION),))

    def list_served(self, pool: str, since: datetime) -> list[ServedCount]:
        with self._read() as db:
            rows = db.execute(
                "SELECT minute, kind, requests FROM served WHERE pool = ? AND minute >= ? ORDER BY minute, kind",
                (pool, format_time(_minute(since))),
            ).fetchall()
        return [ServedCount(pool, parse_time(m), k, r) for m, k, r in rows]

    # per-key usage and shared rate
    def record_usage(self, usage: Sequence[KeyUsage]) -> None:
        with self._write() as db:
            db.executemany(
                "INSERT INTO key_usage VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key_id, pool, hour) DO UPDATE SET"
                " requests = requests + excluded.requests, tokens_in = tokens_in + excluded.tokens_in,"
                " tokens_out = tokens_out + excluded.tokens_out, gpu_seconds = gpu_seconds + excluded.gpu_seconds",
                [(u.key_id, u.pool, format_time(u.hour), u.requests, u.tokens_in, u.tokens_out, u.gpu_seconds)
                 for u in usage],
            )  # fmt: skip

    def list_usage(self, since: datetime) -> list[KeyUsage]:
        with self._read() as db:
            rows = db.execute(
                "SELECT * FROM key_usage WHERE hour >= ? ORDER BY hour, key_id, pool", (format_time(since),)
            ).fetchall()
        return [KeyUsage(k, p, parse_time(h), r, i, o, g) for k, p, h, r, i, o, g in rows]

    def take_key_tokens(self, key_id: str, rate: float, burst: float, want: int, now: datetime) -> int:
        with self._write() as db:
            row = db.execute("SELECT tokens, updated FROM key_buckets WHERE key_id = ?", (key_id,)).fetchone()
            tokens, taken = refill_and_take(row, rate, burst, want, _epoch(now))
            db.execute(
                "INSERT INTO key_buckets VALUES (?, ?, ?) ON CONFLICT (key_id) DO UPDATE"
                " SET tokens = excluded.tokens, updated = excluded.updated",
                (key_id, tokens, _epoch(now)),
            )
        return taken

    def put_key_inflight(self, instance: str, counts: Mapping[str, int], expires_at: datetime) -> None:
        with self._write() as db:
            db.execute("DELETE FROM key_inflight WHERE instance = ?", (instance,))
            db.executemany(
                "INSERT INTO key_inflight VALUES (?, ?, ?, ?)",
                [(instance, key, n, _epoch(expires_at)) for key, n in counts.items() if n > 0],
            )

    def key_inflight(self, now: datetime, exclude: str) -> dict[str, int]:
        with self._read() as db:
            rows = db.execute(
                "SELECT key_id, SUM(count) FROM key_inflight WHERE instance != ? AND expires_at > ? GROUP BY key_id",
                (exclude, _epoch(now)),
            ).fetchall()
        return {key: int(n) for key, n in rows}

    # per-instance records
    def prune_expired(self, now: datetime, limit: int) -> int:
        cutoff = _epoch(prune_cutoff(now))
        with self._write() as db:  # one write transaction: nothing is rewritten between choosing and deleting
            activity = db.execute(
                "DELETE FROM gateway_activity WHERE rowid IN"
                " (SELECT rowid FROM gateway_activity WHERE expires_at < ? LIMIT ?)",
                (cutoff, max(limit, 0)),
            ).rowcount
            # An instance's in-flight record is its rows (one per key), all written with one expiry.
            instances = db.execute(
                "SELECT DISTINCT instance FROM key_inflight WHERE expires_at < ? LIMIT ?",
                (cutoff, max(limit - activity, 0)),
            ).fetchall()
            db.executemany("DELETE FROM key_inflight WHERE instance = ?", instances)
        return activity + len(instances)

    # keys
    def put_key(self, key: ApiKey) -> None:
        with self._write() as db:
            before = db.total_changes
            db.execute(
                "INSERT INTO keys (key_id, doc) VALUES (?, ?) ON CONFLICT (key_id) DO UPDATE"
                " SET doc = excluded.doc WHERE keys.doc != excluded.doc",
                (key.key_id, _dump(key)),
            )
            _bump_version_if_changed(db, before)

    def list_keys(self) -> list[ApiKey]:
        with self._read() as db:
            rows = db.execute("SELECT doc FROM keys ORDER BY key_id").fetchall()
        return [from_document(ApiKey, json.loads(doc)) for (doc,) in rows]

    # change feed
    def snapshot(self) -> Snapshot:
        with self._lock, translated(self._path):
            return read_snapshot(self._connection())

    def watch(self, on_change: Callable[[Snapshot], None]) -> Subscription:
        first = self.snapshot()
        on_change(first)
        feed = SqliteFeed(self._path, on_change, interval=self._poll_interval, seen=first.version)
        with translated(self._path):
            feed.start(connect(self._path))  # its own connection: polling never waits for this one's lock
        return feed

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock, translated(self._path):
            db = self._connection()
            db.execute("BEGIN")  # one read transaction: every SELECT inside sees the same state
            try:
                yield db
            finally:
                db.execute("COMMIT")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, translated(self._path):
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:  # SQLite already rolled back on some I/O errors
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _connection(self) -> sqlite3.Connection:
        # A connection must not cross a fork (gunicorn preloads): reopen in a child process.
        if self._conn is None or self._conn_pid != os.getpid():
            self._conn = connect(self._path)
            self._conn_pid = os.getpid()
        return self._conn


def _bump_version_if_changed(db: sqlite3.Connection, changes_before: int) -> None:
    if db.total_changes != changes_before:
        db.execute("UPDATE meta SET value = value + 1 WHERE key = 'version'")


def _epoch(at: datetime) -> float:
    if at.tzinfo is None:
        raise PermanentError(f"naive datetime {at.isoformat()} is ambiguous; pass an aware UTC time")
    return at.timestamp()


def _dump(value: Any) -> str:
    return json.dumps(to_document(value), separators=(",", ":"), sort_keys=True)


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)
