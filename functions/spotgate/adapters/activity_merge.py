"""How a gateway activity flush folds into the stored document, shared by every store adapter.

Several gateway instances flush the same pool's activity, out of order and possibly twice, so the merge
must not lose the newest request time: times merge newest-wins, counters add, and ``inflight`` (a gauge)
takes the flush's value. Pure, so both stores apply it inside their own transaction.
"""

from __future__ import annotations

from datetime import datetime

from spotgate.domain import Activity


def merge_activity(stored: Activity, flush: Activity) -> Activity:
    """The stored activity after applying ``flush`` (same pool)."""
    backends = dict(stored.backend_last_request)
    for backend, at in flush.backend_last_request.items():
        backends[backend] = _newest(backends.get(backend), at) or at
    return Activity(
        pool=stored.pool,
        last_request_at=_newest(stored.last_request_at, flush.last_request_at),
        inflight=flush.inflight,
        requests_total=stored.requests_total + flush.requests_total,
        backend_last_request=backends,
        updated_at=_newest(stored.updated_at, flush.updated_at),
    )


def _newest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)
