"""The one decision taken before a full reconcile: stop sending new requests to a VM that is going away.

A preemption gives about 30 seconds of notice; gathering the whole pool first would spend seconds of that
while the gateway keeps routing to the doomed VM. Marking its route ``draining`` at once is safe because the
reconcile that follows recomputes every route from observed state anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from spotgate.core.instants import clock
from spotgate.core.state_updates import is_going_away
from spotgate.domain import BackendKind, ComputeEvent, ControlMessage, InboundEvent, Route, RouteState


def fast_path_routes(event: InboundEvent, routes: Sequence[Route], now: datetime) -> list[Route]:
    """Routes to write now: the event's VM marked ``draining``; empty if nothing needs to change.

    A notice older than the route's last change is stale (the VM has restarted since) and changes nothing.
    """
    if not is_going_away(event) or not isinstance(event, ComputeEvent | ControlMessage):
        return []
    return [
        replace(route, state=RouteState.DRAINING, reason=_reason(event), updated_at=now)
        for route in routes
        if route.kind is BackendKind.VM
        and route.backend == event.instance
        and route.state in (RouteState.READY, RouteState.STARTING)
        and event.at >= route.updated_at
    ]


def _reason(event: ComputeEvent | ControlMessage) -> str:
    what = event.kind.value.removeprefix("compute.instances.")
    return f"draining: {what} notice at {clock(event.at)}, no new requests"
