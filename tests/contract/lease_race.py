"""One contender of the cross-process lease race, in a module light enough to import in a spawned child.

The test module imports the Firestore client and the emulator fixtures; a spawned process re-imports the
module that defines its target, so the target lives here and imports only the SQLite store.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from spotgate.adapters.sqlite_store import SqliteStore


def race_for_lease(path: str, holder: str, *, now: datetime, ttl: timedelta, barrier: Any, results: Any) -> None:
    """Wait for every contender, try to take the pool's lease once, report ``(holder, won or error)``."""
    store = SqliteStore(Path(path))
    try:
        barrier.wait(timeout=30)
        results.put((holder, store.acquire_lease("chat", holder, now, ttl)))
    except Exception as e:  # report, so the parent fails at once with the reason instead of timing out
        results.put((holder, repr(e)))
    finally:
        store.close()
