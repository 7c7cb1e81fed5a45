"""The Cloud Functions entry points, through the real functions-framework, against the sandbox Compute API.

Each test delivers Eventarc CloudEvents (binary and structured) to ``functions/main.py`` with
``functions_framework.create_app(...).test_client()``; the functions use the production composition root
(google-cloud-compute and google-cloud-run clients pointed at the sandbox, SQLite store).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient
from functions_framework import create_app
from werkzeug.test import TestResponse

from spotgate.adapters.cloud_tasks_scheduler import wake_message
from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.domain import InstanceStatus, Route, RouteState
from spotgate.fleet import FleetConfig, parse_fleet
from spotgate.sandbox.devstack.cloud import SandboxCloud
from spotgate.sandbox.devstack.stack import control_plane_env
from tests.entrypoint.deliveries import PROJECT, audit_entry, binary, control, structured

MAIN = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")
PREEMPTED = "compute.instances.preempted"
LIVE = {InstanceStatus.PROVISIONING, InstanceStatus.STAGING, InstanceStatus.RUNNING}


def a_fleet() -> FleetConfig:
    return parse_fleet(
        {
            "project": PROJECT,
            "region": "us-central1",
            "pools": [
                {
                    "name": "chat",
                    "model": "tiny-chat",
                    "spot": {"zones": ["us-central1-a", "us-central1-b", "us-central1-c"]},
                    "vms": [{"name": "chat-standard", "zone": "us-central1-a", "provisioning_model": "STANDARD"}],
                    "min_ready": 1,
                    "max_ready": 2,
                    "fallback": {"enabled": True, "after": "10m"},
                    "overflow": {"service": "chat-overflow", "url": "https://chat-overflow-test.a.run.app"},
                }
            ],
            "sandbox": {"speedup": 1000, "load_delay": "1s", "stop_delay": "5s", "preempt_notice": "30s"},
        }
    )


@dataclass
class Functions:
    cloud: SandboxCloud
    store: SqliteStore
    on_control: FlaskClient
    on_compute_event: FlaskClient

    def control(self, kind: str, mode: str = "binary", at: datetime | None = None, **fields: Any) -> TestResponse:
        build = binary if mode == "binary" else structured
        headers, body = build(control(kind, at or _now(), **fields), topic="spotgate-control", at=_now())
        return self.on_control.post("/", headers=headers, data=body)

    def audit(self, method: str, instance: str, *, message_id: str | None = None) -> TestResponse:
        zone = self.cloud.compute.find(instance).zone
        entry = audit_entry(method, instance, zone, _now())
        headers, body = binary(entry, topic="spotgate-compute", at=_now(), message_id=message_id)
        return self.on_compute_event.post("/", headers=headers, data=body)

    def live(self) -> list[str]:
        return sorted(vm.name for vm in self.cloud.compute.instances() if vm.status in LIVE)

    def route(self, backend: str) -> Route:
        return next(r for r in self.store.list_routes("chat") if r.backend == backend)

    def serving(self) -> str:
        """Tick until one VM runs, then report it ready the way its agent would; returns its name."""
        assert self.control("tick").status_code == 200
        (name,) = self.live()
        wait_for(lambda: self.cloud.compute.find(name).status is InstanceStatus.RUNNING)
        zone = self.cloud.compute.find(name).zone
        assert self.control("ready", pool="chat", instance=name, zone=zone).status_code == 200
        assert self.route(name).state is RouteState.READY
        return name


def _now() -> datetime:
    return datetime.now(UTC)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def _functions(directory: Path) -> Iterator[Functions]:
    with SandboxCloud(a_fleet(), directory / "sandbox") as cloud, pytest.MonkeyPatch.context() as env:
        db = directory / "spotgate.db"
        for name, value in control_plane_env(cloud, db).items():
            env.setenv(name, value)
        yield Functions(
            cloud,
            SqliteStore(db),
            create_app(target="on_control", source=MAIN).test_client(),
            create_app(target="on_compute_event", source=MAIN).test_client(),
        )


@pytest.fixture
def functions(tmp_path: Path) -> Iterator[Functions]:
    yield from _functions(tmp_path)


@pytest.fixture(scope="module")
def untouched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Functions]:
    """One stack for tests that must leave it exactly as they found it (they assert so)."""
    yield from _functions(tmp_path_factory.mktemp("untouched"))


@pytest.fixture
def spotgate_logs() -> Iterator[list[logging.LogRecord]]:
    """Records spotgate logs (its logger does not propagate to the root, so caplog cannot see them)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("spotgate")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_tick_starts_a_spot_vm_and_its_ready_notice_opens_the_route(functions: Functions) -> None:
    name = functions.serving()
    route = functions.route(name)
    assert functions.cloud.compute.find(name).zone == route.zone
    assert route.address.startswith("http://127.")
    assert requests.get(route.address + "/health", timeout=5).status_code == 200
    assert functions.route("chat-overflow").state is RouteState.READY


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_ready_notice_is_understood_in_both_cloudevent_modes(functions: Functions, mode: str) -> None:
    assert functions.control("tick", mode=mode).status_code == 200
    (name,) = functions.live()
    wait_for(lambda: functions.cloud.compute.find(name).status is InstanceStatus.RUNNING)
    zone = functions.cloud.compute.find(name).zone
    assert functions.control("ready", mode=mode, pool="chat", instance=name, zone=zone).status_code == 200
    assert functions.route(name).state is RouteState.READY


def test_a_scheduled_wake_up_reconciles_its_pool(functions: Functions) -> None:
    """What a due Cloud Tasks wake-up publishes (``cloud_tasks_scheduler.wake_message``) is a tick for one pool."""
    message = wake_message("chat", _now())
    headers, body = binary(message, topic="spotgate-control", at=_now())
    assert functions.on_control.post("/", headers=headers, data=body).status_code == 200
    (name,) = functions.live()
    assert functions.cloud.compute.find(name).pool == "chat"


def test_preemption_drains_the_route_at_once_and_restarts_capacity(functions: Functions) -> None:
    name = functions.serving()
    functions.cloud.compute.preempt(name)
    assert functions.audit(PREEMPTED, name).status_code == 200
    # The outcome, not a race's winner: the VM may already be TERMINATED (route ``down``) by the reconcile.
    assert functions.route(name).state in (RouteState.DRAINING, RouteState.DOWN)
    replacements = [vm for vm in functions.live() if vm != name]
    assert len(replacements) == 1
    assert functions.cloud.compute.find(replacements[0]).zone != functions.cloud.compute.find(name).zone
    assert any(e.action == "start" for e in functions.store.recent_events("chat"))


def test_stockout_moves_the_start_to_another_zone(functions: Functions) -> None:
    functions.cloud.compute.stock_out("us-central1-a", 60)
    assert functions.control("tick").status_code == 200
    (name,) = functions.live()
    assert functions.cloud.compute.find(name).zone != "us-central1-a"
    state = functions.store.get_pool_state("chat")
    assert "us-central1-a" in state.stockouts
    errors = [e for e in functions.store.recent_events("chat") if e.action == "error"]
    assert any("ZONE_RESOURCE_POOL_EXHAUSTED" in e.reason for e in errors)


def test_duplicated_and_out_of_order_deliveries_cause_no_extra_starts(functions: Functions) -> None:
    name = functions.serving()
    before = _now()
    functions.cloud.compute.preempt(name)
    assert functions.audit(PREEMPTED, name, message_id="42").status_code == 200
    live_after_first = functions.live()
    for _ in range(3):  # at-least-once delivery: the same message again, then a tick racing it
        assert functions.audit(PREEMPTED, name, message_id="42").status_code == 200
        assert functions.control("tick").status_code == 200
    zone = functions.cloud.compute.find(name).zone
    stale_ready = functions.control("ready", at=before - timedelta(seconds=5), pool="chat", instance=name, zone=zone)
    assert stale_ready.status_code == 200
    assert functions.live() == live_after_first
    assert functions.route(name).state in (RouteState.DRAINING, RouteState.DOWN)
    assert sum(e.action == "start" for e in functions.store.recent_events("chat")) == 2


MALFORMED: list[Any] = [
    pytest.param(b"\xff\xfe not json", id="not-json"),
    pytest.param([1, 2, 3], id="json-array"),
    pytest.param({"v": 99, "kind": "tick"}, id="unknown-version"),
    pytest.param({"v": 1, "kind": "explode"}, id="unknown-kind"),
    pytest.param(
        {"v": 1, "kind": "ready", "pool": "no-such-pool", "instance": "x", "zone": "us-central1-a"}, id="unknown-pool"
    ),
    pytest.param(audit_entry("compute.instances.setLabels", "chat-a-1", "us-central1-a", _now()), id="other-method"),
    pytest.param(audit_entry(PREEMPTED, "stranger-vm", "us-central1-a", _now()), id="instance-of-no-pool"),
    pytest.param(
        audit_entry(PREEMPTED, "chat-a-1", "us-central1-a", _now() - timedelta(days=2)),
        id="too-old",
    ),
]


@pytest.mark.parametrize("payload", MALFORMED)
def test_malformed_and_irrelevant_deliveries_are_acked_and_logged(
    untouched: Functions, spotgate_logs: list[logging.LogRecord], payload: Any
) -> None:
    headers, body = binary(payload, topic="spotgate-control", at=_now())
    response = untouched.on_control.post("/", headers=headers, data=body)
    assert response.status_code == 200  # acked: Pub/Sub will not redeliver it
    assert any("ignored" in r.getMessage() for r in spotgate_logs)
    assert untouched.live() == []
    assert untouched.store.get_pool_state("chat").generation == 0


def test_a_body_that_is_not_a_cloudevent_is_rejected_without_a_crash(untouched: Functions) -> None:
    response = untouched.on_control.post("/", data="hello", headers={"content-type": "text/plain"})
    assert 400 <= response.status_code < 500


def test_a_busy_pool_asks_for_redelivery(functions: Functions) -> None:
    assert functions.store.acquire_lease("chat", "another-worker", _now(), timedelta(minutes=1))
    response = functions.control("wake", pool="chat")
    assert response.status_code == 500  # Eventarc retries with backoff; the wake is not lost
    functions.store.release_lease("chat", "another-worker")
    assert functions.control("wake", pool="chat").status_code == 200
