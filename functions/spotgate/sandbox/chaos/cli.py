"""``spotgate sandbox chaos``: run the whole local system under SPOT chaos for N minutes and judge it.

Prints the report as rich tables, writes it as JSON (``<state-dir>/chaos-report.json``), and exits 1 when
the verdict is FAIL, so a CI job can run it as a gate.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console, Group
from rich.table import Table

from spotgate.errors import SpotgateError
from spotgate.fleet import FleetConfig, load_fleet
from spotgate.sandbox.chaos.report import ChaosReport, percentile
from spotgate.sandbox.chaos.verdict import RECLAIMS


@click.command("chaos")
@click.option("--minutes", type=click.FloatRange(min=0.1, max=120), required=True, help="Length of the chaos phase.")
@click.option(
    "--config", "config_path", default="examples/chaos-fleet.yaml", show_default=True, type=click.Path(dir_okay=False)
)
@click.option("--seed", default=1, show_default=True, help="Seed of every chaos decision.")
@click.option("--clients", type=click.IntRange(min=1, max=64), default=4, show_default=True)
@click.option("--state-dir", default=".spotgate/chaos", show_default=True, type=click.Path(file_okay=False))
@click.option(
    "--baseline",
    is_flag=True,
    help="Turn off every pool's preemption_notice and continuation: the run to compare surviving streams with.",
)
def chaos(minutes: float, config_path: str, seed: int, clients: int, state_dir: str, *, baseline: bool) -> None:
    """Run the local system under preemptions, stockouts, maintenance and Pub/Sub faults; PASS or FAIL."""
    # Imported here: the run pulls in the whole sandbox (gRPC, Google clients); rendering a report does not.
    from spotgate.sandbox.chaos.run import ChaosOptions, run_chaos

    console = Console()
    try:
        fleet = without_surviving_streams(load_fleet(config_path)) if baseline else load_fleet(config_path)
        console.print(f"chaos for {minutes:g} min on [bold]{config_path}[/] (seed {seed}, {clients} clients)")
        console.print(f"surviving streams: {_features(fleet)}")
        result = run_chaos(fleet, Path(state_dir), ChaosOptions(seconds=minutes * 60, seed=seed, clients=clients))
    except (SpotgateError, TimeoutError) as e:
        raise click.ClickException(str(e)) from None
    path = Path(state_dir) / "chaos-report.json"
    path.write_text(json.dumps(result.report.as_json(), indent=2))
    console.print(render(result.report))
    console.print(f"report written to {path}")
    if not result.report.passed:
        raise SystemExit(1)


def without_surviving_streams(fleet: FleetConfig) -> FleetConfig:
    """``fleet`` with no early preemption notice and no stream continuation in any pool."""
    pools = tuple(pool.model_copy(update={"preemption_notice": None, "continuation": False}) for pool in fleet.pools)
    return fleet.model_copy(update={"pools": pools})


def _features(fleet: FleetConfig) -> str:
    return (
        ", ".join(
            f"{p.name}: notice {p.preemption_notice.total_seconds():g}s"
            if p.preemption_notice
            else f"{p.name}: no notice"
            for p in fleet.pools
        )
        + "; continuation "
        + ", ".join(f"{p.name} {'on' if p.continuation else 'off'}" for p in fleet.pools)
    )


def render(report: ChaosReport) -> Group:
    """The report as tables: requests, recovery, cost, criteria and the verdict."""
    colour = "green" if report.passed else "red"
    length = f"{report.seconds:.0f} s wall, {report.simulated_seconds / 60:.0f} min simulated"
    return Group(
        _requests(report),
        _recovery(report),
        _costs(report),
        _criteria(report),
        f"[bold {colour}]{report.verdict}[/]  ({length})",
    )


def _requests(report: ChaosReport) -> Table:
    table = Table(
        "pool", "ok", "of which continued", "failed before 1st byte", "cut mid-stream", "streaming", title="requests"
    )
    for pool, c in report.requests.items():
        table.add_row(
            pool, str(c.ok), str(c.continued), str(c.failed_before_first_byte), str(c.cut_mid_stream), str(c.streaming)
        )
    return table


def _recovery(report: ChaosReport) -> Table:
    table = Table("fault", "count", "to draining p50 / max", "to ready VM p50 / max", title="recovery (seconds)")
    for kind in RECLAIMS:
        count = sum(1 for r in report.reclaims if r.kind == kind)
        table.add_row(
            kind, str(count), _pair(report.latency(kind, "to_draining")), _pair(report.latency(kind, "to_ready"))
        )
    table.add_row("stockout", str(report.injected.get("stockout", 0)), "", "")
    ready = [b.to_ready for b in report.boots if b.to_ready is not None]
    running = [b.to_running for b in report.boots]
    expected = max((b.expected for b in report.boots), default=0.0)
    boot_pair = (percentile(running, 50), max(running, default=None))
    table.add_row(
        f"VM boot (fleet: {expected:.1f}s to ready)",
        str(len(report.boots)),
        f"to RUNNING {_pair(boot_pair)}",
        _pair((percentile(ready, 50), max(ready, default=None))),
    )
    push = report.push
    table.add_row(
        "push",
        f"{push.get('failed_attempts', 0)} failed, {push.get('dead_lettered', 0)} dropped",
        f"{push.get('redelivered', 0)} redelivered",
        f"{push.get('duplicates', 0)} duplicated",
    )
    return table


def _costs(report: ChaosReport) -> Table:
    table = Table(
        "pool", "SPOT GPU-s", "STANDARD GPU-s", "overflow warm-s", "cost $", "peak ready", "always-on $",
        title="GPU time and cost (simulated time)",
    )  # fmt: skip
    for c in report.costs:
        table.add_row(
            c.pool, f"{c.spot_seconds:.0f}", f"{c.standard_seconds:.0f}", f"{c.overflow_warm_seconds:.0f}",
            f"{c.cost:.4f}", str(c.peak_ready), f"{c.baseline_cost:.4f}",
        )  # fmt: skip
    return table


def _criteria(report: ChaosReport) -> Table:
    table = Table("criterion", "result", "detail", title="verdict")
    for c in report.criteria:
        detail = "\n".join([c.summary, *c.violations[:10]])
        table.add_row(c.name, "[green]pass[/]" if c.passed else "[red]FAIL[/]", detail)
    return table


def _pair(values: tuple[float | None, float | None]) -> str:
    return " / ".join("-" if v is None else f"{v:.2f}" for v in values)
