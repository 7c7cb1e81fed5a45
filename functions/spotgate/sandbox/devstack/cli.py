"""``spotgate sandbox``: run the local cloud on its own, and poke it like GCE would (preempt, stock out, ...).

``serve`` runs the sandbox in the foreground and records its endpoints in ``<state-dir>/sandbox.json``; the
other commands find it there (or in ``dev.json`` written by ``spotgate dev``) and act through the sandbox's
control endpoints, so they work from any terminal while it runs.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click
import requests
from rich.console import Console
from rich.table import Table

from spotgate.errors import SpotgateError
from spotgate.fleet import load_fleet
from spotgate.logs import configure_logging
from spotgate.sandbox.chaos.cli import chaos
from spotgate.sandbox.devstack.cloud import SandboxCloud
from spotgate.sandbox.devstack.state import SandboxState, read_state, remove_state, write_state

F = TypeVar("F", bound=Callable[..., Any])


def state_dir_option(command: F) -> F:
    option = click.option(
        "--state-dir",
        default=".spotgate",
        show_default=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="Where the running sandbox records its endpoints.",
    )
    return option(command)


@click.group("sandbox")
def sandbox() -> None:
    """The local cloud: emulated GCP APIs and simulated SPOT GPU VMs."""


@sandbox.command()
@click.option(
    "--config", "config_path", default="examples/fleet.yaml", show_default=True, type=click.Path(dir_okay=False)
)
@state_dir_option
def serve(config_path: str, state_dir: Path) -> None:
    """Run the sandbox in the foreground until Ctrl-C or SIGTERM."""
    configure_logging("WARNING")
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    console = Console()
    try:
        with SandboxCloud(load_fleet(config_path), state_dir) as cloud:
            state = SandboxState(cloud.endpoints(), os.getpid(), str(Path(config_path).resolve()))
            path = write_state(state_dir, state)
            try:
                console.print(endpoints_table(state.endpoints))
                console.print(f"endpoints written to {path}; Ctrl-C stops the sandbox")
                stop.wait()
            finally:
                remove_state(state_dir)
    except SpotgateError as e:
        raise click.ClickException(str(e)) from None
    console.print("sandbox stopped.")


@sandbox.command()
@state_dir_option
def status(state_dir: Path) -> None:
    """Show every VM of the running sandbox and the stocked-out zones."""
    console = Console()
    if not console.is_terminal:  # piped or captured: do not squeeze the table into 80 columns
        console.width = 200
    console.print(status_table(_control(state_dir, "GET", "status")))


@sandbox.command()
@click.argument("name")
@state_dir_option
def preempt(name: str, state_dir: Path) -> None:
    """Preempt VM NAME: STOPPING now, TERMINATED (engine killed) after the notice."""
    _act(state_dir, "preempt", {"instance": name}, f"preempted {name}")


@sandbox.command()
@click.argument("name")
@state_dir_option
def maintenance(name: str, state_dir: Path) -> None:
    """Terminate VM NAME for host maintenance (no notice)."""
    _act(state_dir, "maintenance", {"instance": name}, f"terminated {name} for host maintenance")


@sandbox.command()
@click.argument("zone")
@click.option("--seconds", type=click.FloatRange(min=0), required=True, help="How long starts there fail (0 ends it).")
@state_dir_option
def stockout(zone: str, seconds: float, state_dir: Path) -> None:
    """Make SPOT starts in ZONE fail with ZONE_RESOURCE_POOL_EXHAUSTED for a while."""
    _act(state_dir, "stockout", {"zone": zone, "seconds": seconds}, f"{zone} stocked out for {seconds:g} s")


@sandbox.command()
@click.argument("name")
@state_dir_option
def start(name: str, state_dir: Path) -> None:
    """Start VM NAME (as the control plane would)."""
    _act(state_dir, "start", {"instance": name}, f"starting {name}")


@sandbox.command()
@click.argument("name")
@state_dir_option
def stop(name: str, state_dir: Path) -> None:
    """Stop VM NAME."""
    _act(state_dir, "stop", {"instance": name}, f"stopping {name}")


@sandbox.command("project")
@click.argument("change")
@state_dir_option
def project(change: str, state_dir: Path) -> None:
    """Change what the sandbox's project has, to see `spotgate preflight` fail: CHANGE is one JSON object, e.g.
    '{"disable_api": "compute.googleapis.com"}', '{"quota": {"region": "us-central1", "metric":
    "PREEMPTIBLE_NVIDIA_L4_GPUS", "limit": 2}}' (every key: spotgate/sandbox/compute/project_api.py)."""
    try:
        body = json.loads(change)
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"not JSON: {e}", param_hint="CHANGE") from None
    if not isinstance(body, dict):
        raise click.BadParameter("must be a JSON object", param_hint="CHANGE")
    _act(state_dir, "project", body, f"project changed: {', '.join(sorted(body))}")


def _act(state_dir: Path, verb: str, body: dict[str, Any], done: str) -> None:
    _control(state_dir, "POST", verb, body)
    click.echo(done)


def _control(state_dir: Path, method: str, verb: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Call the running sandbox's control endpoint; any failure becomes a one-line ClickException."""
    try:
        state = read_state(state_dir)
        response = requests.request(method, f"{state.compute_url}/sandbox/{verb}", json=body, timeout=10)
    except SpotgateError as e:
        raise click.ClickException(str(e)) from None
    except requests.RequestException as e:
        raise click.ClickException(f"the sandbox did not answer: {e}") from None
    payload: dict[str, Any] = response.json() if response.content else {}
    if response.status_code >= 400:
        raise click.ClickException(str(payload.get("error", {}).get("message", response.text)))
    return payload


def endpoints_table(endpoints: dict[str, Any]) -> Table:
    table = Table(title="spotgate sandbox", show_header=False)
    for key in ("project", "compute", "cloud_run", "certs", "gateway_service_account"):
        table.add_row(key, str(endpoints.get(key, "")))
    for service, url in sorted(endpoints.get("overflow", {}).items()):
        table.add_row(f"overflow {service}", url)
    return table


def status_table(status: dict[str, Any]) -> Table:
    stockouts: dict[str, float] = status.get("stockouts", {})
    table = Table(title=f"sandbox VMs ({status.get('project', '')})")
    for column in ("name", "pool", "zone", "provisioning", "status", "address", "engine"):
        table.add_column(column)
    colours = {"RUNNING": "green", "TERMINATED": "dim", "STOPPING": "yellow"}
    for vm in status.get("instances", []):
        colour = colours.get(vm["status"], "cyan")
        zone = vm["zone"] + (f" [red](stockout {stockouts[vm['zone']]:.0f}s)[/]" if vm["zone"] in stockouts else "")
        table.add_row(
            vm["name"],
            vm["pool"],
            zone,
            vm["provisioning_model"],
            f"[{colour}]{vm['status']}[/]",
            vm["network_ip"],
            vm.get("engine_url") or "",
        )
    return table


sandbox.add_command(chaos)
