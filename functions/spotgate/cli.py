"""The ``spotgate`` command: operators' view of the fleet, API keys, and the local sandbox.

Production subcommands (``plan``, ``status``, ``keys``) go through ``bootstrap`` like the functions do, so
the same code runs against GCP or the sandbox, chosen by settings. The ``sandbox`` and ``dev`` groups are
developer tools; they are loaded only when invoked, so a deployed CLI never imports the sandbox.
"""

from __future__ import annotations

import importlib
from typing import Any

import click


class _LazyGroup(click.Group):
    """A click group whose developer-only subcommands live in modules imported on first use."""

    lazy: dict[str, str] = {
        "sandbox": "spotgate.sandbox.cli:sandbox",
        "keys": "spotgate.keys_cli:keys",
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
def main() -> None:
    """spotgate: SPOT GPU inference on GCP with one OpenAI-compatible URL."""
