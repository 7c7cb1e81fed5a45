"""``spotgate keys``: mint, list and revoke gateway API keys.

The CLI is the only writer of keys (DESIGN §2.1). A new key's secret is printed exactly once, at creation;
the store keeps only its SHA-256, so a lost key is revoked and replaced, never recovered. Revoking sets
``disabled`` rather than deleting, so ``keys list`` still explains why an old client gets 401.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from spotgate.apikeys import generate_key, parse_expiry
from spotgate.clock import SystemClock
from spotgate.domain import ApiKey, KeyUsage
from spotgate.errors import SpotgateError
from spotgate.fleet import parse_duration
from spotgate.ports import Clock, RouteStore

T = TypeVar("T")
_POOL_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


def _store(ctx: click.Context) -> RouteStore:
    """The store injected by the caller (tests) or the configured one (bootstrap)."""
    obj: dict[str, Any] = ctx.ensure_object(dict)
    if "store" not in obj:
        from spotgate.bootstrap import build_store
        from spotgate.cli import cli_errors
        from spotgate.settings import read_settings

        with cli_errors(obj.get("env_file")):
            obj["store"] = build_store(read_settings(obj.get("env_file")))
    store: RouteStore = obj["store"]
    return store


def _clock(ctx: click.Context) -> Clock:
    clock: Clock = ctx.ensure_object(dict).get("clock") or SystemClock()
    return clock


def _parse_pools(value: str | None) -> tuple[str, ...]:
    """The pools of ``--pools``; not given means all pools, but given and empty is refused (fail closed)."""
    pools = tuple(p.strip() for p in (value or "").split(",") if p.strip())
    if value is not None and not pools:
        raise click.BadParameter("name at least one pool, or leave --pools out for all pools", param_hint="--pools")
    bad = [p for p in pools if not _POOL_NAME.match(p)]
    if bad:
        raise click.BadParameter(f"not a pool name: {', '.join(bad)}", param_hint="--pools")
    return pools


@click.group()
def keys() -> None:
    """Gateway API keys: create (shown once), list, usage, revoke."""


@keys.command()
@click.argument("name")
@click.option("--pools", default=None, help="Comma-separated pools the key may call (default: all).")
@click.option("--rpm", type=click.IntRange(min=0), default=0, help="Requests per minute (0: unlimited).")
@click.option("--concurrency", type=click.IntRange(min=0), default=0, help="Concurrent requests (0: unlimited).")
@click.option("--expires", default=None, help="Lifetime like 30d or 12h, or an ISO 8601 time.")
@click.option("--passthrough", is_flag=True, help="Also allow /pools/<pool>/... (what each pool exposes).")
@click.pass_context
def create(
    ctx: click.Context,
    *,
    name: str,
    pools: str | None,
    rpm: int,
    concurrency: int,
    expires: str | None,
    passthrough: bool,
) -> None:
    """Create a key and print its secret once (only its hash is stored)."""
    now = _clock(ctx).now()
    try:
        expires_at = parse_expiry(expires, now) if expires else None
    except SpotgateError as e:
        raise click.BadParameter(str(e), param_hint="--expires") from None
    new = generate_key()
    key = ApiKey(
        new.key_id, name, new.secret_hash, now, _parse_pools(pools), rpm, concurrency, expires_at,
        passthrough=passthrough,
    )  # fmt: skip
    _run(lambda: _store(ctx).put_key(key))
    click.echo(f"Created key {key.key_id} ({name}). This is the only time the secret is shown:")
    click.echo(new.secret)


@keys.command(name="list")
@click.pass_context
def list_keys(ctx: click.Context) -> None:
    """List keys and their scopes (never their secrets)."""
    now = _clock(ctx).now()
    rows = sorted(_run(lambda: _store(ctx).list_keys()), key=lambda k: k.created_at)
    table = Table("id", "name", "pools", "pass-through", "rpm", "concurrency", "expires", "state", "created")
    for k in rows:
        table.add_row(
            k.key_id,
            k.name,
            ",".join(k.pools) or "*",
            "yes" if k.passthrough else "no",
            str(k.rpm or "-"),
            str(k.max_concurrent or "-"),
            _when(k.expires_at),
            _state(k, now),
            _when(k.created_at),
        )
    Console(width=140).print(table)


@keys.command()
@click.option("--since", default="24h", show_default=True, help="How far back: a duration like 24h or 7d.")
@click.option("--key", "key_id", default=None, help="Only this key id.")
@click.pass_context
def usage(ctx: click.Context, since: str, key_id: str | None) -> None:
    """Usage per key, pool and UTC hour: requests, tokens in and out, GPU-seconds of backend time."""
    try:
        start = _clock(ctx).now() - parse_duration(since)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--since") from None
    start = start.replace(minute=0, second=0, microsecond=0)
    rows = [u for u in _run(lambda: _store(ctx).list_usage(start)) if key_id is None or u.key_id == key_id]
    names = {k.key_id: k.name for k in _run(lambda: _store(ctx).list_keys())}
    table = Table("hour (UTC)", "key", "name", "pool", "requests", "tokens in", "tokens out", "GPU-seconds")
    for u in rows:
        table.add_row(
            u.hour.strftime("%Y-%m-%d %H:00"), u.key_id, names.get(u.key_id, "-"), u.pool, str(u.requests),
            str(u.tokens_in), str(u.tokens_out), f"{u.gpu_seconds:.1f}",
        )  # fmt: skip
    if rows:
        table.add_row("total", "", "", "", *_totals(rows))
    Console(width=140).print(table)


def _totals(rows: list[KeyUsage]) -> tuple[str, str, str, str]:
    return (
        str(sum(u.requests for u in rows)),
        str(sum(u.tokens_in for u in rows)),
        str(sum(u.tokens_out for u in rows)),
        f"{sum(u.gpu_seconds for u in rows):.1f}",
    )


@keys.command()
@click.argument("key_id")
@click.pass_context
def revoke(ctx: click.Context, key_id: str) -> None:
    """Disable a key at once (the gateway refuses it within seconds)."""
    store = _store(ctx)
    key = next((k for k in _run(store.list_keys) if k.key_id == key_id), None)
    if key is None:
        raise click.ClickException(f"no key with id {key_id!r} (see `spotgate keys list`)")
    if not key.disabled:
        _run(lambda: store.put_key(replace(key, disabled=True)))
    click.echo(f"Revoked key {key_id} ({key.name}).")


def _run(call: Callable[[], T]) -> T:
    """Call into the store, turning spotgate errors into a one-line CLI error."""
    try:
        return call()
    except SpotgateError as e:
        raise click.ClickException(f"key store: {e}") from e


def _state(key: ApiKey, now: datetime) -> str:
    if key.disabled:
        return "revoked"
    return "expired" if key.is_expired(now) else "active"


def _when(at: datetime | None) -> str:
    return "-" if at is None else at.strftime("%Y-%m-%d %H:%M UTC")
