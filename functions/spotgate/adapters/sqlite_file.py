"""Opening the SQLite file that the local processes share: schema, journal mode, and error translation.

Why separate: the store and its change feed each hold their own connections to the same file, and both
must open it the same way (WAL, busy timeout, schema) and translate the same sqlite3 errors.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from spotgate.errors import PermanentError, UnavailableError

BUSY_TIMEOUT_SECONDS = 5.0  # how long a writer waits for another process's write lock

# Executed by every new connection; idempotent. ``meta.version`` counts route and key changes (the feed).
_SCHEMA = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('version', 0);
CREATE TABLE IF NOT EXISTS routes (key TEXT PRIMARY KEY, pool TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pool_state (pool TEXT PRIMARY KEY, generation INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS leases (pool TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS gateway_activity (
    pool TEXT NOT NULL, gateway TEXT NOT NULL, expires_at REAL NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (pool, gateway));
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, pool TEXT NOT NULL, at TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_pool_time ON events (pool, at);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT, pool TEXT NOT NULL, at TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS history_by_pool_time ON history (pool, at);
CREATE TABLE IF NOT EXISTS served (
    pool TEXT NOT NULL, minute TEXT NOT NULL, kind TEXT NOT NULL, requests INTEGER NOT NULL,
    PRIMARY KEY (pool, minute, kind));
CREATE TABLE IF NOT EXISTS keys (key_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS key_usage (
    key_id TEXT NOT NULL, pool TEXT NOT NULL, hour TEXT NOT NULL, requests INTEGER NOT NULL,
    tokens_in INTEGER NOT NULL, tokens_out INTEGER NOT NULL, gpu_seconds REAL NOT NULL,
    PRIMARY KEY (key_id, pool, hour));
CREATE TABLE IF NOT EXISTS key_inflight (
    instance TEXT NOT NULL, key_id TEXT NOT NULL, count INTEGER NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (instance, key_id));
CREATE TABLE IF NOT EXISTS key_buckets (key_id TEXT PRIMARY KEY, tokens REAL NOT NULL, updated REAL NOT NULL);
COMMIT;
"""


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with the schema in place.

    Raises sqlite3 errors; callers wrap the call in ``translated``.
    """
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
    try:
        db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        _enable_wal(db)
        db.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; WAL keeps it consistent
        db.executescript(_SCHEMA)  # BEGIN IMMEDIATE inside, so concurrent openers queue
    except BaseException:
        db.close()
        raise
    return db


@contextmanager
def translated(path: Path) -> Iterator[None]:
    """Turn sqlite3 errors into spotgate's: contention and I/O are transient, a broken file is not."""
    try:
        yield
    except sqlite3.OperationalError as e:  # locked past busy_timeout, I/O error, cannot open
        raise UnavailableError(f"SQLite store {path} is unavailable: {e}") from e
    except sqlite3.DatabaseError as e:  # corrupt file, not a database
        raise PermanentError(f"SQLite store {path} is unusable: {e}") from e


def _enable_wal(db: sqlite3.Connection) -> None:
    """Switch the file to WAL once; every later opener finds it set (the mode is stored in the file).

    Changing the journal mode can fail with "locked" without consulting the busy handler while another
    process opens or switches the same file, so the switch is retried for up to the busy timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            db.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
