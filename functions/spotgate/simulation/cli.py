"""``spotgate simulate SCENARIO``: replay a scenario through the production planner and print its report."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import click

from spotgate.errors import ConfigError
from spotgate.simulation.replay import simulate as replay
from spotgate.simulation.report import render_text
from spotgate.simulation.scenario import TraceCapacity, load_scenario


@click.command()
@click.argument("scenario_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--seed", type=int, help="Random seed (default: the scenario's).")
@click.option("--days", type=float, help="Simulate only this many days (default: the whole trace).")
@click.option(
    "--traces",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Read the trace files from this folder instead of the scenario's capacity.folder.",
)
@click.option("--as-json", "as_json", is_flag=True, help="Print the report as JSON.")
def simulate(scenario_file: Path, seed: int | None, days: float | None, traces: Path | None, as_json: bool) -> None:
    """Replay SCENARIO_FILE (fleet file, pool, capacity traces, zone mapping, demand, timing) through the
    production planner and print availability, where requests were served, GPU-hours and cost."""
    try:
        scenario = load_scenario(scenario_file)
        updates: dict[str, object] = {}
        if seed is not None:
            updates["seed"] = seed
        if days is not None:
            if days <= 0:
                raise click.BadParameter("must be positive", param_hint="--days")
            updates["length"] = timedelta(days=days)
        if traces is not None:
            if not isinstance(scenario.capacity, TraceCapacity):
                raise click.BadParameter("the scenario's capacity is not from traces", param_hint="--traces")
            updates["capacity"] = scenario.capacity.model_copy(update={"folder": traces})
        report = replay(scenario.model_copy(update=updates))
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else render_text(report))
