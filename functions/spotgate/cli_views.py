"""Rich renderings of fleet state for ``spotgate status`` and ``spotgate plan`` (and the dev live view)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.console import Group
from rich.table import Table

from spotgate.domain import DecisionRecord, Instance, Plan, Route
from spotgate.fleet import FleetConfig
from spotgate.services.audit import describe_action

_STATE_STYLE = {"ready": "green", "starting": "yellow", "draining": "magenta", "down": "dim"}
_STATUS_STYLE = {"RUNNING": "green", "PROVISIONING": "yellow", "STAGING": "yellow", "STOPPING": "magenta"}


def fleet_table(fleet: FleetConfig, instances: dict[str, list[Instance]], routes: Sequence[Route]) -> Table:
    """One row per backend: pool, VM or overflow, zone, model, VM status, route state and reason."""
    by_key = {r.key: r for r in routes}
    table = Table(title="pools", expand=True)
    for column in ("pool", "backend", "zone", "kind", "status", "route", "reason"):
        table.add_column(column, overflow="fold")
    for pool in fleet.pools:
        for vm in instances.get(pool.name, []):
            route = by_key.get(f"{pool.name}.{vm.name}")
            table.add_row(
                pool.name,
                vm.name,
                vm.zone,
                vm.provisioning_model.value,
                f"[{_STATUS_STYLE.get(vm.status.value, 'dim')}]{vm.status.value}[/]",
                _route_cell(route),
                route.reason if route else "",
            )
        if pool.overflow:
            route = by_key.get(f"{pool.name}.{pool.overflow.service}")
            table.add_row(
                pool.name, pool.overflow.service, "", "overflow", "", _route_cell(route), route.reason if route else ""
            )
    return table


def events_table(records: Sequence[DecisionRecord], limit: int = 12) -> Table:
    """The newest control-plane decisions with their reasons."""
    table = Table(title="recent control-plane actions", expand=True)
    for column in ("time", "pool", "action", "target", "reason"):
        table.add_column(column, overflow="fold")
    for record in list(records)[:limit]:
        table.add_row(_clock(record.at), record.pool, record.action, record.target, record.reason)
    return table


def plan_view(plans: dict[str, Plan]) -> Group:
    """Each pool's pending actions with reasons, like ``terraform plan``."""
    parts: list[Table] = []
    for pool, decided in plans.items():
        table = Table(title=f"plan for pool {pool}", expand=True, show_lines=False)
        table.add_column("action")
        table.add_column("target")
        table.add_column("reason", overflow="fold")
        for action in decided.actions:
            kind, target = describe_action(action)
            table.add_row(kind, target, action.reason)
        if not decided.actions:
            table.add_row("-", "-", "nothing to do")
        parts.append(table)
    return Group(*parts)


def _route_cell(route: Route | None) -> str:
    if route is None:
        return "[dim]-[/]"
    return f"[{_STATE_STYLE.get(route.state.value, 'dim')}]{route.state.value}[/]"


def _clock(at: datetime) -> str:
    return at.strftime("%H:%M:%S")
