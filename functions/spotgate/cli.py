"""The ``spotgate`` command: operators' view of the fleet, API keys, and the local sandbox.

Production subcommands (``plan``, ``status``, ``keys``) go through ``bootstrap`` like the functions do, so
the same code runs against GCP or the sandbox, chosen by settings. The ``sandbox`` and ``dev`` groups are
developer tools; they are loaded only when invoked, so a deployed CLI never imports the sandbox.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from spotgate.bootstrap import ControlPlaneRuntime

# Where `make dev` (spotgate dev) writes the local stack's settings, relative to the repository root.
LOCAL_ENV_FILE = Path(".spotgate/dev.env")


class _LazyGroup(click.Group):
    """A click group whose developer-only subcommands live in modules imported on first use."""

    lazy: dict[str, str] = {
        "sandbox": "spotgate.sandbox.devstack.cli:sandbox",
        "dev": "spotgate.sandbox.devstack.dev_cli:dev",
        "keys": "spotgate.keys_cli:keys",
        "preflight": "spotgate.preflight.cli:preflight",
        "simulate": "spotgate.simulation.cli:simulate",
        "report": "spotgate.history.cli:report",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module_name, attr = self.lazy[cmd_name].split(":")
            command: Any = getattr(importlib.import_module(module_name), attr)
            return command  # type: ignore[no-any-return]
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup)
@click.version_option(package_name="spotgate")
@click.option(
    "--env-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read SPOTGATE_* settings from this file too (a local stack writes .spotgate/dev.env).",
)
@click.pass_context
def main(ctx: click.Context, env_file: Path | None) -> None:
    """spotgate: SPOT GPU inference on GCP with one OpenAI-compatible URL."""
    ctx.ensure_object(dict)["env_file"] = env_file


@main.command()
@click.option("--pool", "pool_name", help="Only this pool (default: every pool).")
@click.pass_context
def plan(ctx: click.Context, pool_name: str | None) -> None:
    """Show what the reconciler would do now, with reasons, without applying anything."""
    from rich.console import Console

    from spotgate.cli_views import plan_view

    runtime = _runtime(ctx)
    pools = [p for p in runtime.fleet.pools if pool_name in (None, p.name)]
    if not pools:
        raise click.BadParameter(f"no pool named {pool_name!r}", param_hint="--pool")
    Console().print(plan_view({p.name: runtime.control_plane.preview(p) for p in pools}))


@main.command()
@click.option("--events", "event_count", default=12, show_default=True, help="How many recent actions to show.")
@click.pass_context
def status(ctx: click.Context, event_count: int) -> None:
    """Show pools, VMs, route states, overflow and the last control-plane actions."""
    from rich.console import Console

    from spotgate.bootstrap import build_compute
    from spotgate.cli_views import events_table, fleet_table

    runtime = _runtime(ctx)
    with cli_errors(ctx.obj.get("env_file")):
        compute = build_compute(runtime.settings, runtime.fleet)
        instances = {p.name: compute.list_instances(p.name) for p in runtime.fleet.pools}
    console = Console()
    console.print(fleet_table(runtime.fleet, instances, runtime.store.list_routes()))
    console.print(events_table(runtime.store.recent_events(limit=event_count), event_count))


def _runtime(ctx: click.Context) -> ControlPlaneRuntime:
    """The production composition for CLI commands; configuration errors become clean CLI errors."""
    from spotgate.bootstrap import build_control_plane
    from spotgate.settings import read_settings

    with cli_errors(ctx.obj.get("env_file")):
        return build_control_plane(read_settings(ctx.obj.get("env_file")))


@contextmanager
def cli_errors(env_file: Path | None) -> Iterator[None]:
    """Turn configuration errors and missing Google credentials into one clear CLI error.

    Without credentials Google's clients raise ``DefaultCredentialsError`` when they are built; a newcomer
    running the CLI next to ``make dev`` usually meant the local stack, so the message says how to use it.
    """
    from google.auth.exceptions import DefaultCredentialsError

    from spotgate.errors import SpotgateError

    try:
        yield
    except DefaultCredentialsError:
        raise click.ClickException(_no_credentials(env_file)) from None
    except SpotgateError as e:
        raise click.ClickException(str(e)) from None


def _no_credentials(env_file: Path | None) -> str:
    message = (
        "No Google Cloud credentials found (Application Default Credentials), so the deployed store cannot be "
        "reached. Run `gcloud auth application-default login` to use your GCP deployment."
    )
    if env_file is None and LOCAL_ENV_FILE.is_file():
        command = " ".join(click.get_current_context().command_path.split()[1:])
        message += (
            f"\nThe local stack's settings are in {LOCAL_ENV_FILE} (written by `make dev`): to use it, run "
            f"`spotgate --env-file {LOCAL_ENV_FILE} {command} …`."
        )
    return message
