"""``spotgate report --since 7d``: the simulator's figures for the deployed fleet, from the store's history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from spotgate.clock import SystemClock
from spotgate.fleet import FleetConfig, parse_duration
from spotgate.history.page import render_page
from spotgate.history.recording import SNAPSHOT_EVERY
from spotgate.history.replay import Series, replay_history
from spotgate.ports import Clock, RouteStore
from spotgate.simulation.report import Report, render_text


@click.command()
@click.option("--since", "since_text", default="7d", show_default=True, help="How far back: '7d', '36h', '90m'.")
@click.option("--pool", "pool_name", help="Only this pool (default: every pool).")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path), help="Also write this page.")
@click.option("--as-json", "as_json", is_flag=True, help="Print the reports as JSON.")
@click.pass_context
def report(ctx: click.Context, since_text: str, pool_name: str | None, html_file: Path | None, as_json: bool) -> None:
    """Availability, requests served, GPU-hours, cost against always-on on-demand, preemptions and recovery
    of each pool over the last SINCE, from what the control plane and the gateway recorded in the store."""
    try:
        period = parse_duration(since_text)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--since") from None
    if period.total_seconds() <= 0:
        raise click.BadParameter("must be positive", param_hint="--since")
    fleet, store, clock = _wiring(ctx)
    pools = [p for p in fleet.pools if pool_name in (None, p.name)]
    if not pools:
        raise click.BadParameter(f"no pool named {pool_name!r}", param_hint="--pool")
    until = clock.now()
    since = until - period
    results: list[tuple[Report, Series]] = []
    for pool in pools:
        # Every VM and route is written whole at least every SNAPSHOT_EVERY: reading that much earlier gives
        # the levels the period starts with.
        records = store.list_history(pool.name, since - SNAPSHOT_EVERY)
        served = store.list_served(pool.name, since)
        results.append(
            replay_history(
                records, served, pool=pool.name, since=since, until=until, min_ready=pool.min_ready, prices=fleet.prices
            )
        )
    if as_json:
        click.echo(json.dumps([r.to_json() for r, _ in results], indent=2))
    else:
        click.echo("\n\n".join(render_text(r) for r, _ in results))
    if html_file is not None:
        html_file.write_text(render_page(results, since, until), encoding="utf-8")
        click.echo(f"wrote {html_file}", err=True)


def _wiring(ctx: click.Context) -> tuple[FleetConfig, RouteStore, Clock]:
    """The fleet, store and clock injected by the caller (tests) or the configured ones (bootstrap)."""
    obj: dict[str, Any] = ctx.ensure_object(dict)
    if "store" not in obj or "fleet" not in obj:
        from spotgate.bootstrap import build_store
        from spotgate.cli import cli_errors
        from spotgate.settings import read_settings

        with cli_errors(obj.get("env_file")):
            settings = read_settings(obj.get("env_file"))
            obj["fleet"] = settings.load_fleet()
            obj["store"] = build_store(settings, obj["fleet"])
    clock: Clock = obj.get("clock") or SystemClock()
    return obj["fleet"], obj["store"], clock
