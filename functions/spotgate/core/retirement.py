"""Which VMs leave service, and when: never cut a stream to save a minute (DESIGN §2.3).

A VM chosen for scale-down, sleep, the end of active hours or the swap back to SPOT is first *drained*: its
route turns ``draining`` (no new requests) and the pool remembers since when (``PoolState.retiring``). It is
stopped once nothing is in flight on it and its last request finished ``drain_grace`` ago, or after
``drain_timeout`` whatever is in flight. VMs with nothing in flight are chosen first, so a VM carrying a
long stream is kept while an idle one is stopped. A VM up for less than ``min_uptime`` is not retired yet
(its GPU boot was just paid for); it keeps serving until then, and no other VM is retired in its place.

A VM that announced it is going away (a preemption or shutdown notice) but stays RUNNING serves nothing
and bills: after ``GOING_AWAY_GRACE`` (GCE's preemption takes 30 s) it is stopped once empty (as above), or
after ``drain_timeout``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from spotgate.core.demand import inflight_on
from spotgate.core.instants import clock
from spotgate.core.lifecycle import Phase, Vm, boot_started
from spotgate.domain import Activity, PoolState, StopInstance
from spotgate.fleet import PoolSpec

# A VM that announced it is going away is left this long to go by itself before spotgate stops it.
GOING_AWAY_GRACE = timedelta(minutes=1)
_NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Retirement:
    """VMs leaving service: ``stops`` now, ``held`` (route draining) until ``until``, and ``kept`` VMs
    that will be retired once their minimum up time ends; ``since`` says when each one's draining began.
    """

    stops: tuple[StopInstance, ...] = ()
    held: tuple[tuple[str, datetime], ...] = ()
    kept: tuple[tuple[str, datetime], ...] = ()
    since: tuple[tuple[str, datetime], ...] = ()

    @classmethod
    def of(cls, *parts: Retirement) -> Retirement:
        return cls(
            stops=tuple(stop for part in parts for stop in part.stops),
            held=tuple(held for part in parts for held in part.held),
            kept=tuple(kept for part in parts for kept in part.kept),
            since=tuple(since for part in parts for since in part.since),
        )

    def route_reasons(self) -> dict[str, str]:
        """Why each retiring VM's route drains: it takes no new requests from now on."""
        reasons = {
            name: f"draining: spotgate stops this VM once its requests finish, at the latest {clock(until)}"
            for name, until in self.held
        }
        return reasons | {stop.instance: "draining: spotgate is stopping this VM" for stop in self.stops}

    @property
    def waits(self) -> list[datetime]:
        """When a held or kept VM may be stopped next without any event."""
        return [until for _, until in (*self.held, *self.kept)]


@dataclass(frozen=True, slots=True)
class Leaving:
    """What ``choose_stops`` reads besides the VMs: the pool, its memory and traffic, and the instant."""

    spec: PoolSpec
    state: PoolState
    activity: Activity
    now: datetime

    def last_used(self, vm: str) -> datetime | None:
        """When a request on ``vm`` last started or finished; idleness counts from the later."""
        times = (self.activity.backend_last_request.get(vm), self.activity.backend_last_finished.get(vm))
        return max((t for t in times if t is not None), default=None)

    def inflight(self, vm: str) -> int:
        return inflight_on(self.activity, vm, self.now)

    def is_empty(self, vm: str) -> bool:
        """Nothing in flight on ``vm``, and its last request finished at least ``drain_grace`` ago."""
        last = self.last_used(vm)
        return self.inflight(vm) == 0 and (last is None or self.now - last >= self.spec.drain_grace)


def choose_stops(ctx: Leaving, stoppable: Sequence[Vm], count: int, why: str) -> Retirement:
    """Retire ``count`` of ``stoppable``: STANDARD first, then not yet ready, then nothing in flight (and
    those already draining), then the longest idle. See the module docstring for when each one stops.
    """
    parts = [_retire(ctx, vm, why) for vm in sorted(stoppable, key=lambda vm: _rank(ctx, vm))[: max(count, 0)]]
    return Retirement.of(*parts)


def going_away_stops(ctx: Leaving, vms: Sequence[Vm]) -> Retirement:
    """Stops of VMs that announced they are going away but are still up (see the module docstring)."""
    stops = []
    for vm in vms:
        if vm.phase is not Phase.DRAINING or not vm.is_up or vm.notice is None:
            continue
        age = ctx.now - vm.notice.at
        if age >= GOING_AWAY_GRACE and (ctx.is_empty(vm.name) or age >= ctx.spec.drain_timeout):
            load = "nothing in flight" if ctx.is_empty(vm.name) else f"drain_timeout {ctx.spec.drain_timeout} passed"
            reason = (
                f"stop {vm.name}: still {vm.instance.status} {_age(age)} after its going-away notice at "
                f"{clock(vm.notice.at)}; {load}"
            )
            stops.append(StopInstance(vm.name, vm.instance.zone, reason))
    return Retirement(tuple(stops))


def _retire(ctx: Leaving, vm: Vm, why: str) -> Retirement:
    started = boot_started(vm.instance, ctx.state)
    if started is not None and ctx.now - started < ctx.spec.min_uptime:
        return Retirement(kept=((vm.name, started + ctx.spec.min_uptime),))
    since = ctx.state.retiring.get(vm.name, ctx.now)
    inflight, last = ctx.inflight(vm.name), ctx.last_used(vm.name)
    if ctx.is_empty(vm.name):
        load = f"idle since {clock(last)}" if last else "no traffic recorded"
        return Retirement(stops=(_stop(vm, f"{why}; {load}"),), since=((vm.name, since),))
    if ctx.now - since >= ctx.spec.drain_timeout:
        load = f"drain_timeout {ctx.spec.drain_timeout} passed with {inflight} request(s) in flight"
        return Retirement(stops=(_stop(vm, f"{why}; {load}"),), since=((vm.name, since),))
    until = since + ctx.spec.drain_timeout
    if inflight == 0 and last is not None:
        until = min(until, last + ctx.spec.drain_grace)
    return Retirement(held=((vm.name, until),), since=((vm.name, since),))


def _stop(vm: Vm, why: str) -> StopInstance:
    where = f"{vm.instance.provisioning_model}, {vm.instance.zone}"
    return StopInstance(vm.name, vm.instance.zone, f"stop {vm.name} ({where}): {why}")


def _rank(ctx: Leaving, vm: Vm) -> tuple[bool, bool, bool, bool, datetime, str]:
    busy = ctx.inflight(vm.name) > 0
    draining = vm.name in ctx.state.retiring
    return (vm.is_spot, vm.phase is Phase.READY, busy, not draining, ctx.last_used(vm.name) or _NEVER, vm.name)


def _age(span: timedelta) -> str:
    return f"{int(span.total_seconds())}s"
