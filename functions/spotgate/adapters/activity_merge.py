"""How the gateway instances' activity records add up to one pool's ``Activity``, for every store adapter.

Each gateway instance writes its own record (``GatewayActivity``), so no flush overwrites another: three
instances with 6 requests in flight each read as 18, and an idle instance flushing later adds 0 instead of
replacing the sum with 0. Gauges (in flight, per pool and per VM) add over the *live* records only, those
not past their expiry, so an instance that vanished stops counting; times take the newest value over every
record kept (the last request of an instance that scaled down still keeps the pool awake); counters add.
Pure, so both stores apply it to what they read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta

from spotgate.domain import Activity, GatewayActivity

RETENTION = timedelta(days=1)  # records expired longer than this are deleted: their times no longer matter


def sum_activity(pool: str, records: Iterable[GatewayActivity], now: datetime) -> Activity:
    """The pool's activity as of ``now`` from every gateway instance's record (of this pool)."""
    kept = [r for r in records if r.pool == pool]
    live = [r for r in kept if r.expires_at > now]
    backend_inflight: Counter[str] = Counter()
    for record in live:
        backend_inflight.update(record.backend_inflight)
    return Activity(
        pool=pool,
        last_request_at=_newest(r.last_request_at for r in kept),
        inflight=sum(r.inflight for r in live),
        requests_total=sum(r.requests_total for r in kept),
        backend_last_request=_newest_each(r.backend_last_request for r in kept),
        updated_at=_newest(r.at for r in live),
        backend_inflight={vm: n for vm, n in sorted(backend_inflight.items()) if n > 0},
        backend_last_finished=_newest_each(r.backend_last_finished for r in kept),
    )


def prune_cutoff(now: datetime) -> datetime:
    """Records that expired before this are deleted (``RouteStore.prune_expired``): it changes no decision."""
    return now - RETENTION


def _newest(times: Iterable[datetime | None]) -> datetime | None:
    return max((t for t in times if t is not None), default=None)


def _newest_each(maps: Iterable[dict[str, datetime]]) -> dict[str, datetime]:
    newest: dict[str, datetime] = {}
    for times in maps:
        for key, at in times.items():
            if key not in newest or at > newest[key]:
                newest[key] = at
    return dict(sorted(newest.items()))
