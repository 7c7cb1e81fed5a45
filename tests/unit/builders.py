"""Test-data builders for pure tests: readable defaults, override only what a case is about."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from spotgate.domain import (
    Activity,
    BackendKind,
    Instance,
    InstanceStatus,
    Notice,
    NoticeKind,
    Observed,
    PoolState,
    ProvisioningModel,
    Route,
    RouteState,
)
from spotgate.fleet import PoolSpec

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # a Monday
ZONES = ("us-central1-a", "us-central1-b", "us-central1-c")
POOL = "chat"


def ago(**delta: float) -> datetime:
    """``NOW`` minus a duration: ``ago(minutes=3)``."""
    return NOW - timedelta(**delta)


def later(**delta: float) -> datetime:
    """``NOW`` plus a duration: ``later(minutes=3)``."""
    return NOW + timedelta(**delta)


def a_pool_spec(**overrides: Any) -> PoolSpec:
    """Pool ``chat``: SPOT VMs chat-a-1, chat-b-1, chat-c-1 (one per zone) and STANDARD chat-std in zone a.

    Defaults: min_ready 0, max_ready 2, idle 15m, drain grace 30s, boot timeout 10m, stockout cooldown 5m,
    no fallback, no overflow, no active hours. Pass ``fallback=True`` / ``overflow=True`` for the usual ones.
    """
    data: dict[str, Any] = {
        "name": POOL,
        "model": "llama-test",
        "spot": {"zones": list(ZONES)},
        "vms": [{"name": "chat-std", "zone": ZONES[0], "provisioning_model": "STANDARD"}],
        "engine": {"port": 8000},
        "max_ready": 2,
        "idle_timeout": "15m",
        "drain_grace": "30s",
        "boot_timeout": "10m",
        "stockout_cooldown": "5m",
    }
    if overrides.pop("fallback", False):
        data["fallback"] = {"enabled": True, "after": "2m"}
    if overrides.pop("overflow", False):
        data["overflow"] = {
            "service": "chat-overflow",
            "url": "https://chat-overflow.example.run.app",
            "cooldown": "5m",
        }
    data.update(overrides)
    return PoolSpec.model_validate(data)


def an_instance(
    name: str = "chat-a-1",
    status: InstanceStatus | str = InstanceStatus.TERMINATED,
    *,
    zone: str | None = None,
    model: ProvisioningModel | str | None = None,
    ip: str | None = None,
    last_start: datetime | None = None,
    last_stop: datetime | None = None,
) -> Instance:
    """A VM of pool ``chat``; zone and provisioning model follow its name (``chat-b-1`` is SPOT in zone b)."""
    status = InstanceStatus(status)
    if zone is None:
        zone = ZONES[0] if name == "chat-std" else f"us-central1-{name.split('-')[1]}"
    if model is None:
        model = ProvisioningModel.STANDARD if name == "chat-std" else ProvisioningModel.SPOT
    if ip is None:  # a stopped VM keeps its private IP (networkInterfaces[0].networkIP)
        ip = f"10.0.0.{(sum(map(ord, name)) % 200) + 2}"
    if last_start is None and status.is_live:
        last_start = ago(minutes=30)
    return Instance(
        name=name,
        zone=zone,
        status=status,
        provisioning_model=ProvisioningModel(model),
        network_ip=ip,
        labels={"spotgate-pool": POOL},
        last_start=last_start,
        last_stop=last_stop,
    )


def stopped(*names: str) -> list[Instance]:
    return [an_instance(name, InstanceStatus.TERMINATED) for name in names]


def all_vms(**overrides: Instance) -> tuple[Instance, ...]:
    """Every VM of the default pool, TERMINATED unless overridden by name (``chat_a_1=an_instance(...)``)."""
    names = ("chat-a-1", "chat-b-1", "chat-c-1", "chat-std")
    by_key = {name.replace("-", "_"): name for name in names}
    unknown = set(overrides) - set(by_key)
    if unknown:
        raise KeyError(f"no such VM in the default pool: {sorted(unknown)}")
    return tuple(overrides.get(key) or an_instance(name) for key, name in by_key.items())


def an_activity(
    *,
    last_request: datetime | None = None,
    inflight: int = 0,
    backends: dict[str, datetime] | None = None,
    updated_at: datetime | None = NOW,
) -> Activity:
    return Activity(
        pool=POOL,
        last_request_at=last_request,
        inflight=inflight,
        backend_last_request=dict(backends or {}),
        updated_at=updated_at,
    )


def a_route(
    backend: str = "chat-a-1",
    state: RouteState | str = RouteState.READY,
    *,
    address: str | None = None,
    kind: BackendKind = BackendKind.VM,
    zone: str | None = None,
    updated_at: datetime | None = None,
) -> Route:
    if address is None:
        address = f"http://{an_instance(backend, InstanceStatus.RUNNING).network_ip}:8000"
    if zone is None:
        zone = an_instance(backend).zone if kind is BackendKind.VM else ""
    return Route(POOL, backend, kind, address, RouteState(state), "test", updated_at or ago(minutes=20), zone)


def observed(
    instances: tuple[Instance, ...] | list[Instance] = (),
    *,
    routes: tuple[Route, ...] | list[Route] = (),
    activity: Activity | None = None,
    overflow_min: int | None = None,
) -> Observed:
    """What a reconcile saw; no ``instances`` means every default VM, stopped."""
    return Observed(
        instances=tuple(instances) or all_vms(),
        routes=tuple(routes),
        activity=activity or an_activity(),
        overflow_min_instances=overflow_min,
    )


def a_state(**fields: Any) -> PoolState:
    return PoolState(pool=POOL, generation=fields.pop("generation", 7), **fields)


def ready_notice(at: datetime | None = None) -> Notice:
    return Notice(NoticeKind.READY, at or ago(minutes=25))


def draining_notice(at: datetime | None = None) -> Notice:
    return Notice(NoticeKind.DRAINING, at or ago(seconds=10))
