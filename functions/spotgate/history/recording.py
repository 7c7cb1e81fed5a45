"""What one control-plane round adds to a pool's history: only what changed since it was last written.

The control plane sees the pool at every round (VMs as GCE lists them, routes, the gateway's activity) and
knows what it did (routes and overflow scale it set, starts that failed for capacity) and why (the inbound
event, the actions' reasons). ``round_records`` turns one round into records and returns the new "last
written" view; a view that is lost (a new function instance) only makes the next round write everything
again, which changes no level a report integrates. A full re-write every hour (``snapshot_due``) bounds how
far back a report must read to know the levels at its start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from spotgate.domain import (
    Action,
    ComputeEvent,
    ComputeEventKind,
    HistoryKind,
    HistoryRecord,
    InboundEvent,
    Observed,
    Route,
    SetOverflow,
    SetRoute,
    StartInstance,
    StopInstance,
)

SNAPSHOT_EVERY = timedelta(hours=1)
_GOING_AWAY = {ComputeEventKind.PREEMPTED, ComputeEventKind.HOST_ERROR, ComputeEventKind.TERMINATE_ON_HOST_MAINTENANCE}


@dataclass(frozen=True, slots=True)
class Written:
    """What the history last said of a pool: VM (zone, model, status), route states, request count, causes."""

    at: datetime | None = None  # when everything was last written whole
    vms: Mapping[str, tuple[str, str, str]] = field(default_factory=dict)
    routes: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # backend -> (kind, state)
    busy: int | None = None  # VMs with requests in flight
    causes: Mapping[str, str] = field(default_factory=dict)  # instance -> the last start/stop and its reason
    overflow: int | None = None  # the overflow service's min instances


def snapshot_due(written: Written, now: datetime) -> bool:
    return written.at is None or now - written.at >= SNAPSHOT_EVERY


def round_records(
    pool: str,
    now: datetime,
    written: Written,
    *,
    event: InboundEvent | None,
    observed: Observed | None,
    applied: Sequence[Action],
    stockouts: Sequence[StartInstance],
) -> tuple[list[HistoryRecord], Written]:
    """The records of one round and the new view; ``observed`` None: the round could not look at the pool."""
    whole = snapshot_due(written, now)
    records: list[HistoryRecord] = []
    records += _event_records(pool, now, event)
    records += [
        HistoryRecord(pool, now, HistoryKind.STOCKOUT, a.instance, zone=a.zone, cause="stockout") for a in stockouts
    ]
    causes = dict(written.causes)
    if isinstance(event, ComputeEvent):
        causes[event.instance] = event.kind.value
    vms, routes, busy, overflow = dict(written.vms), dict(written.routes), written.busy, written.overflow
    if observed is not None:
        records += _vm_records(pool, now, vms, observed, causes=causes, whole=whole)
        routes_now = {r.backend: _route_view(r) for r in observed.routes}
        records += _route_records(pool, now, routes, routes_now, cause="observed", whole=whole)
        records += _busy_records(pool, now, observed, busy, whole)
        vms = {i.name: (i.zone, i.provisioning_model.value, i.status.value) for i in observed.instances}
        routes = routes_now
        busy = _busy(observed)
        seen = observed.overflow_min_instances
        if seen is not None and (whole or seen != overflow):
            records.append(HistoryRecord(pool, now, HistoryKind.OVERFLOW, "overflow", str(seen), cause="observed"))
            overflow = seen
    for action in applied:
        records += _action_records(pool, now, action, routes)
        if isinstance(action, SetOverflow):
            overflow = action.min_instances
        if isinstance(action, StartInstance | StopInstance):
            causes[action.instance] = f"{'start' if isinstance(action, StartInstance) else 'stop'}: {action.reason}"
    refreshed = now if whole and observed is not None else written.at
    return records, Written(refreshed, vms, routes, busy, causes, overflow)


def _event_records(pool: str, now: datetime, event: InboundEvent | None) -> list[HistoryRecord]:
    if not isinstance(event, ComputeEvent) or event.kind not in _GOING_AWAY:
        return []
    return [
        HistoryRecord(pool, event.at, HistoryKind.PREEMPTED, event.instance, zone=event.zone, cause=event.kind.value)
    ]


def _vm_records(
    pool: str,
    now: datetime,
    before: Mapping[str, tuple[str, str, str]],
    observed: Observed,
    *,
    causes: Mapping[str, str],
    whole: bool,
) -> list[HistoryRecord]:
    records = []
    for vm in sorted(observed.instances, key=lambda i: i.name):
        view = (vm.zone, vm.provisioning_model.value, vm.status.value)
        if whole or before.get(vm.name) != view:
            cause = causes.get(vm.name, "observed")
            records.append(HistoryRecord(pool, now, HistoryKind.VM, vm.name, view[2], view[0], view[1], cause=cause))
    return records


def _route_view(route: Route) -> tuple[str, str]:
    return route.kind.value, route.state.value


def _route_records(
    pool: str,
    now: datetime,
    before: Mapping[str, tuple[str, str]],
    after: Mapping[str, tuple[str, str]],
    *,
    cause: str,
    whole: bool,
) -> list[HistoryRecord]:
    changed = [b for b in sorted(after) if whole or before.get(b) != after[b]]
    return [
        HistoryRecord(pool, now, HistoryKind.ROUTE, b, after[b][1], backend_kind=after[b][0], cause=cause)
        for b in changed
    ]


def _busy(observed: Observed) -> int:
    return sum(1 for n in observed.activity.backend_inflight.values() if n > 0)


def _busy_records(pool: str, now: datetime, observed: Observed, before: int | None, whole: bool) -> list[HistoryRecord]:
    busy = _busy(observed)
    if not whole and before == busy:
        return []
    return [HistoryRecord(pool, now, HistoryKind.BUSY, "gateway", count=busy)]


def _action_records(
    pool: str, now: datetime, action: Action, routes: dict[str, tuple[str, str]]
) -> list[HistoryRecord]:
    """A route or overflow change the round made (``routes`` is updated so the next round does not repeat it)."""
    if isinstance(action, SetRoute):
        r = action.route
        if routes.get(r.backend) == _route_view(r):
            return []
        routes[r.backend] = _route_view(r)
        return [
            HistoryRecord(
                pool, now, HistoryKind.ROUTE, r.backend, r.state.value, backend_kind=r.kind.value, cause=action.reason
            )
        ]
    if isinstance(action, SetOverflow):
        return [
            HistoryRecord(
                pool, now, HistoryKind.OVERFLOW, action.service, str(action.min_instances), cause=action.reason
            )
        ]
    return []
