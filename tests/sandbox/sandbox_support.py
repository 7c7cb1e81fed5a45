"""Helpers for tests that run a whole SandboxCloud: the example fleet sped up, clients, bounded polling."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from google.api_core import extended_operation
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from spotgate.fleet import FleetConfig, SandboxSpec, load_fleet
from spotgate.sandbox.devstack.cloud import SandboxCloud

EXAMPLE_FLEET = Path(__file__).resolve().parents[2] / "examples" / "fleet.yaml"
# 1000x: a 60 s boot takes 60 ms. Tokens are paced at 200/s real so a long stream stays open long enough to cut.
FAST = SandboxSpec(
    speedup=1000,
    boot_delay=60,  # type: ignore[arg-type]
    load_delay=100,  # type: ignore[arg-type]
    stop_delay=15,  # type: ignore[arg-type]
    preempt_notice=300,  # type: ignore[arg-type]
    time_to_first_token=0,  # type: ignore[arg-type]
    tokens_per_second=0.2,
    overflow_cold_start=200,  # type: ignore[arg-type]
)


def a_fleet(*, overflow: bool = True, **sandbox: Any) -> FleetConfig:
    """The example fleet with test-speed sandbox timings (``sandbox`` overrides single fields).

    ``overflow=False`` drops the overflow services, for Compute-only tests: no overflow engine to start.
    """
    spec = FAST.model_validate({**FAST.model_dump(), **sandbox})
    fleet = load_fleet(EXAMPLE_FLEET)
    pools = fleet.pools if overflow else tuple(p.model_copy(update={"overflow": None}) for p in fleet.pools)
    return fleet.model_copy(update={"sandbox": spec, "pools": pools})


def engine_pids(cloud: SandboxCloud) -> list[int]:
    launcher = cloud._launcher  # the test checks the cloud's own children
    return [child.pid for child in launcher.children()] if launcher else []


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie has exited even if not reaped yet
        return stat.read().split(")")[-1].split()[0] != "Z"


def compute_clients(cloud: SandboxCloud) -> tuple[compute_v1.InstancesClient, compute_v1.ZoneOperationsClient]:
    options = {"api_endpoint": cloud.compute_url}
    credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
    return (
        compute_v1.InstancesClient(credentials=credentials, client_options=options),
        compute_v1.ZoneOperationsClient(credentials=credentials, client_options=options),
    )


class _ZoneOperation(extended_operation.ExtendedOperation):
    """What ``InstancesClient.start`` returns, but polling through *our* operations client (see §4.4)."""

    @property
    def error_message(self) -> str:
        return str(self._extended_operation.http_error_message)

    @property
    def error_code(self) -> int:
        return int(self._extended_operation.http_error_status_code)


def as_extended(
    ops: compute_v1.ZoneOperationsClient, project: str, zone: str, op: compute_v1.Operation
) -> extended_operation.ExtendedOperation:
    """An ExtendedOperation whose ``result()`` raises like the real client's (ServiceUnavailable, ...)."""
    refresh = functools.partial(ops.get, project=project, zone=zone, operation=op.name)
    return _ZoneOperation.make(refresh, lambda: None, op)  # type: ignore[no-untyped-call,no-any-return]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.02) -> bool:
    """Poll ``predicate`` until true or ``timeout`` (bounded); returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def healthy(url: str, path: str = "/health") -> bool:
    try:
        return requests.get(url + path, timeout=2).status_code == 200
    except requests.RequestException:
        return False
