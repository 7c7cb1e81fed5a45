"""The routing table the gateway should see for a pool, written only where it differs from what is there.

Every route write wakes every gateway listener, so an unchanged route is never rewritten: a change is a
different state, address or zone, or a route that does not exist yet. Routes of VMs that no longer exist are
set ``down`` rather than deleted, so the table stays a complete record of where traffic may go.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from spotgate.core.instants import clock
from spotgate.core.lifecycle import Phase, Vm
from spotgate.domain import BackendKind, Route, RouteState, SetRoute
from spotgate.fleet import OverflowSpec, PoolSpec


def route_changes(
    spec: PoolSpec, vms: Sequence[Vm], current: Iterable[Route], retiring: Mapping[str, str], now: datetime
) -> list[SetRoute]:
    """``SetRoute`` for every backend whose wanted route differs from ``current``.

    ``retiring`` maps VMs this plan stops, or will stop after their drain grace, to the reason their route
    drains: they receive no new requests from now on.
    """
    existing = {route.backend: route for route in current}
    wanted = [_vm_route(spec, vm, retiring.get(vm.name), now) for vm in vms]
    if spec.overflow is not None:
        wanted.append(_overflow_route(spec.name, spec.overflow, now))
    known = {route.backend for route in wanted}
    wanted += [_gone(route, now) for route in existing.values() if route.backend not in known]
    return [SetRoute(route) for route in wanted if _differs(route, existing.get(route.backend))]


def vm_address(spec: PoolSpec, network_ip: str | None) -> str:
    """The base URL of a VM's engine; empty while the VM has no private IP."""
    return f"http://{network_ip}:{spec.engine.port}" if network_ip else ""


def _vm_route(spec: PoolSpec, vm: Vm, retiring: str | None, now: datetime) -> Route:
    state, reason = _vm_state(vm, retiring)
    address = vm_address(spec, vm.instance.network_ip)
    if state is RouteState.READY and not address:
        state, reason = RouteState.STARTING, "starting: ready notice received, but the VM has no private IP yet"
    return Route(spec.name, vm.name, BackendKind.VM, address, state, reason, now, vm.instance.zone)


def _vm_state(vm: Vm, retiring: str | None) -> tuple[RouteState, str]:
    status = vm.instance.status
    notice_at = clock(vm.notice.at) if vm.notice else ""
    if vm.phase is Phase.DRAINING:
        return RouteState.DRAINING, f"draining: {vm.instance.status}, preemption or shutdown notice at {notice_at}"
    if not vm.is_up:
        return RouteState.DOWN, f"down: {status}"
    if retiring is not None:
        return RouteState.DRAINING, retiring
    if vm.phase is Phase.READY:
        return RouteState.READY, f"ready: RUNNING, engine ready since {notice_at}"
    if vm.phase is Phase.STUCK:
        return RouteState.STARTING, f"starting: {status} but not ready within boot_timeout"
    return RouteState.STARTING, f"starting: {status}, waiting for the engine's ready notice"


def _overflow_route(pool: str, overflow: OverflowSpec, now: datetime) -> Route:
    reason = "ready: overflow service answers when no VM can (cold-starts when scaled to zero)"
    return Route(pool, overflow.service, BackendKind.OVERFLOW, overflow.url, RouteState.READY, reason, now)


def _gone(route: Route, now: datetime) -> Route:
    what = (
        "overflow service removed from the pool"
        if route.kind is BackendKind.OVERFLOW
        else "not among the pool's VMs (removed, or in another zone)"
    )
    return Route(
        route.pool, route.backend, route.kind, route.address, RouteState.DOWN, f"down: {what}", now, route.zone
    )


def _differs(wanted: Route, current: Route | None) -> bool:
    if current is None:
        return True
    return (wanted.state, wanted.address, wanted.zone, wanted.kind) != (
        current.state,
        current.address,
        current.zone,
        current.kind,
    )
