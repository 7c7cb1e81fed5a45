"""``spotgate dev``: run the whole system locally and watch it work.

Starts a ``DevStack`` for a fleet file, prints how to call the gateway, shows a live view of pools, VMs,
routes and the control plane's latest decisions, and stops every process on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click
from rich.console import Console, Group
from rich.live import Live

from spotgate.adapters.gce_compute import GceCompute
from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.cli_views import events_table, fleet_table
from spotgate.errors import SpotgateError
from spotgate.fleet import load_fleet
from spotgate.sandbox.devstack.stack import DevStack


@click.command("dev")
@click.option(
    "--config", "config_path", default="examples/fleet.yaml", show_default=True, type=click.Path(dir_okay=False)
)
@click.option("--state-dir", default=".spotgate", show_default=True, type=click.Path(file_okay=False))
@click.option("--live/--no-live", default=True, help="Show the live view (off: print the banner and wait).")
def dev(config_path: str, state_dir: str, live: bool) -> None:
    """Run sandbox, functions and gateway locally until Ctrl-C."""
    console = Console()
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        fleet = load_fleet(config_path)
        console.print(f"starting the local cloud for [bold]{config_path}[/] (first start imports a lot; ~10-30 s)")
        with DevStack(fleet, Path(state_dir)) as stack:
            console.rule("spotgate dev is running")
            click.echo(banner(stack))  # plain text: a panel would wrap the curl line and break copy-paste
            console.rule()
            if live:
                _watch(stack, stop, console)
            else:
                stop.wait()
            console.print("stopping every process ...")
    except SpotgateError as e:
        raise click.ClickException(str(e)) from None
    console.print("stopped.")


def banner(stack: DevStack) -> str:
    """How to call the gateway, with the dev key (shown here and kept in the state file, mode 0600)."""
    model = stack.fleet.pools[0].model
    return (
        f"gateway   {stack.gateway_url}\n"
        f"API key   {stack.api_key}\n"
        f"state     {stack.state_dir / 'dev.json'}\n\n"
        f"curl {stack.gateway_url}/v1/chat/completions \\\n"
        f"  -H 'Authorization: Bearer {stack.api_key}' -H 'Content-Type: application/json' \\\n"
        f'  -d \'{{"model": "{model}", "messages": [{{"role": "user", "content": "hello"}}]}}\'\n\n'
        f"python: OpenAI(base_url='{stack.gateway_url}/v1', api_key='{stack.api_key}')\n"
        f"preempt a VM:  .venv/bin/spotgate sandbox preempt NAME --state-dir {stack.state_dir}\n"
        f"fleet status:  .venv/bin/spotgate --env-file {stack.state_dir / 'dev.env'} status"
    )


def _watch(stack: DevStack, stop: threading.Event, console: Console) -> None:
    store = SqliteStore(stack.db_path)
    compute = GceCompute(stack.fleet.project, endpoint=stack.cloud.compute_url)
    with Live(console=console, refresh_per_second=2, transient=False) as view:
        while not stop.is_set():
            try:
                instances = {p.name: compute.list_instances(p.name) for p in stack.fleet.pools}
                view.update(
                    Group(fleet_table(stack.fleet, instances, store.list_routes()), events_table(store.recent_events()))
                )
            except SpotgateError as e:
                view.update(f"[red]cannot read the fleet: {e}[/]")
            stop.wait(1.0)
