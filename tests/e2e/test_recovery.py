"""End to end: the whole local system (sandbox, both functions, gateway) driven with the official OpenAI SDK.

One stack serves the module; each test first waits for the state it starts from, so the order of tests does
not matter. Simulated time runs 30x faster (a 60 s boot takes 2 s); the planner's own timers (idle timeout,
cooldowns, fallback delay) are wall-clock and set short here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from openai import OpenAI

from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.domain import InstanceStatus, ProvisioningModel, Route, RouteState
from spotgate.fleet import FleetConfig, parse_fleet
from spotgate.sandbox.devstack.stack import DevOptions, DevStack
from tests.e2e.access_log import AccessCheck

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
ZONES = ["us-central1-a", "us-central1-b", "us-central1-c"]


def _a_window_twelve_hours_away() -> dict[str, Any]:
    hour = (datetime.now(UTC).hour + 12) % 24
    return {"timezone": "UTC", "windows": [{"start": f"{hour:02d}:00", "end": f"{(hour + 1) % 24:02d}:00"}]}


def e2e_fleet() -> FleetConfig:
    return parse_fleet(
        {
            "project": "spotgate-e2e",
            "region": "us-central1",
            "pools": [
                {
                    "name": "chat",
                    "model": "tiny-chat",
                    "spot": {"zones": ZONES},
                    "vms": [{"name": "chat-standard", "zone": "us-central1-a", "provisioning_model": "STANDARD"}],
                    "min_ready": 1,
                    "max_ready": 2,
                    "idle_timeout": "1h",
                    "drain_grace": "1s",
                    "drain_timeout": "5s",
                    "min_uptime": "0s",
                    "stockout_cooldown": "3s",
                    "fallback": {"enabled": True, "after": "2s"},
                    "overflow": {
                        "service": "chat-overflow",
                        "url": "https://chat-overflow-e2e.a.run.app",
                        "cooldown": "3s",
                    },
                },
                {
                    "name": "nap",
                    "model": "tiny-nap",
                    "spot": {"zones": ["us-central1-b"]},
                    "engine": {"port": 8001},
                    "min_ready": 0,
                    "max_ready": 1,
                    "idle_timeout": "4s",
                    "drain_grace": "1s",
                    "drain_timeout": "5s",
                    "min_uptime": "0s",
                    "wake_hold": "40s",
                },
                {
                    "name": "night",
                    "model": "tiny-night",
                    "spot": {"zones": ["us-central1-c"]},
                    "engine": {"port": 8002},
                    "min_ready": 1,
                    "drain_grace": "1s",
                    "min_uptime": "0s",
                    "active_hours": _a_window_twelve_hours_away(),
                },
            ],
            "sandbox": {
                "speedup": 30,
                "boot_delay": "60s",
                "load_delay": "30s",
                "stop_delay": "10s",
                "preempt_notice": "30s",
                "time_to_first_token": "30ms",
                "tokens_per_second": 200,
                "overflow_cold_start": "20s",
            },
        }
    )


class Stack:
    def __init__(self, dev: DevStack, access: AccessCheck) -> None:
        self.dev = dev
        self.store = SqliteStore(dev.db_path)
        # One client for the module's stack (not tests.sdk's per-test one, which would be closed after the first
        # test); its HTTP client records every answer and is closed by the stack fixture (AccessCheck.verify).
        self.client = OpenAI(
            base_url=dev.gateway_url + "/v1", api_key=dev.api_key, max_retries=0, timeout=60,
            http_client=access.client(),
        )  # fmt: skip

    def routes(self, pool: str) -> dict[str, Route]:
        return {r.backend: r for r in self.store.list_routes(pool)}

    def ready_vms(self, pool: str) -> list[str]:
        return sorted(
            name for name, r in self.routes(pool).items() if r.kind.value == "vm" and r.state is RouteState.READY
        )

    def status(self, name: str) -> InstanceStatus:
        return self.dev.cloud.compute.find(name).status

    def served_by(self, model: str, *, stream: bool = False) -> str:
        """Make one completion; return the backend that answered (``x-spotgate-backend``)."""
        messages: Any = [{"role": "user", "content": "tell me about spot capacity"}]
        if stream:
            with self.client.chat.completions.with_streaming_response.create(
                model=model, messages=messages, stream=True, max_tokens=12
            ) as response:
                text = "".join(_deltas(response.iter_lines()))
                assert text
                return str(response.headers["x-spotgate-backend"])
        raw = self.client.chat.completions.with_raw_response.create(model=model, messages=messages, max_tokens=8)
        assert raw.parse().choices[0].message.content
        return str(raw.headers["x-spotgate-backend"])

    def overflow_min_instances(self) -> int:
        service = f"{self.dev.cloud.run_url}/v2/projects/spotgate-e2e/locations/us-central1/services/chat-overflow"
        body = requests.get(service, timeout=5).json()
        return int(body.get("scaling", {}).get("minInstanceCount", 0))

    def clear_stockouts(self) -> None:
        for zone in ZONES:
            self.dev.cloud.compute.stock_out(zone, 0)


def _deltas(lines: Iterator[str]) -> Iterator[str]:
    import json

    for line in lines:
        if line.startswith("data: ") and line != "data: [DONE]":
            chunk = json.loads(line[len("data: ") :])
            assert "error" not in chunk, chunk
            for choice in chunk.get("choices", []):
                yield choice.get("delta", {}).get("content") or ""


def eventually(condition: Callable[[], Any], timeout: float = 60.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout:.0f}s: {getattr(condition, '__name__', condition)}")
        time.sleep(every)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    options = DevOptions(startup_timeout=120)
    access = AccessCheck()
    with DevStack(e2e_fleet(), tmp_path_factory.mktemp("e2e"), options) as dev:
        yield Stack(dev, access)
    access.verify(dev.state_dir / "logs", dev.api_key)  # the stack has stopped: every line is written


@pytest.fixture
def serving(stack: Stack) -> str:
    """A chat VM is ready and the gateway routes to it (the tick starts one for min_ready 1); returns its name."""
    stack.clear_stockouts()
    vm = str(eventually(lambda: (stack.ready_vms("chat") or [None])[0]))
    eventually(lambda: stack.served_by("tiny-chat") == vm, timeout=10, every=0.2)  # the gateway follows the store
    return vm


def test_a_streaming_request_is_served_by_a_vm(stack: Stack, serving: str) -> None:
    assert stack.served_by("tiny-chat", stream=True) == serving
    assert stack.served_by("tiny-chat") == serving


def test_preemption_drains_serves_from_overflow_and_recovers_in_another_zone(stack: Stack, serving: str) -> None:
    zone = stack.dev.cloud.compute.find(serving).zone
    stack.dev.cloud.compute.stock_out(zone, 120)  # the preempted VM's zone has no SPOT capacity now
    stack.dev.cloud.compute.preempt(serving)

    # The draining notice arrives while the VM is still inside its 30 s (1 s scaled) notice window.
    eventually(lambda: stack.routes("chat")[serving].state is not RouteState.READY, timeout=10, every=0.02)
    assert stack.routes("chat")[serving].state is RouteState.DRAINING

    # In the gap every request is answered (served_by asserts a complete stream): by the draining VM for the
    # moment the gateway takes to follow the table, then by overflow, which the control plane warms.
    eventually(lambda: stack.served_by("tiny-chat", stream=True) == "chat-overflow", timeout=10, every=0.05)
    eventually(lambda: stack.overflow_min_instances() == 1, timeout=30)

    replacement = eventually(lambda: next(iter(set(stack.ready_vms("chat")) - {serving}), None))
    assert stack.dev.cloud.compute.find(replacement).zone != zone
    eventually(lambda: stack.served_by("tiny-chat") == replacement, timeout=10, every=0.2)

    eventually(lambda: stack.overflow_min_instances() == 0, timeout=60)  # cooled after its cooldown
    stack.clear_stockouts()


def test_an_idle_pool_scales_to_zero_and_wakes_on_the_next_request(stack: Stack) -> None:
    (nap,) = [vm.name for vm in stack.dev.fleet.pools[1].vms]
    assert stack.status(nap) is InstanceStatus.TERMINATED  # min_ready 0: nothing runs until asked

    # No ready VM and no overflow: the gateway publishes a wake and holds the request until the VM is ready.
    assert stack.served_by("tiny-nap", stream=True) == nap
    assert stack.status(nap) is InstanceStatus.RUNNING

    # Idle past idle_timeout (4 s): the control plane stops it again.
    eventually(lambda: stack.status(nap) is InstanceStatus.TERMINATED, timeout=60)
    eventually(lambda: stack.routes("nap")[nap].state is RouteState.DOWN, timeout=10)


def test_a_vm_running_outside_its_pools_active_hours_is_stopped(stack: Stack) -> None:
    (night,) = [vm.name for vm in stack.dev.fleet.pools[2].vms]
    assert stack.status(night) is InstanceStatus.TERMINATED  # min_ready 1, but not now
    vm = stack.dev.cloud.compute.find(night)
    stack.dev.cloud.compute.start(vm.zone, night, "operator@example.com")  # someone starts it by hand

    def stopped_for_active_hours() -> bool:
        stops = [e for e in stack.store.recent_events("night") if e.action == "stop"]
        return any("active hours" in e.reason for e in stops)

    eventually(stopped_for_active_hours, timeout=60)  # often before it even reaches RUNNING
    eventually(lambda: stack.status(night) is InstanceStatus.TERMINATED, timeout=60)


def test_full_spot_stockout_falls_back_to_standard_and_returns_to_spot(stack: Stack, serving: str) -> None:
    for zone in ZONES:
        stack.dev.cloud.compute.stock_out(zone, 120)
    stack.dev.cloud.compute.preempt(serving)

    eventually(lambda: "chat-standard" in stack.ready_vms("chat"), timeout=90)
    assert stack.served_by("tiny-chat") in {"chat-standard", "chat-overflow"}

    stack.clear_stockouts()  # SPOT capacity is back
    spot = eventually(
        lambda: next(
            (
                n
                for n in stack.ready_vms("chat")
                if stack.dev.cloud.compute.find(n).provisioning_model is ProvisioningModel.SPOT
            ),
            None,
        ),
        timeout=90,
    )
    eventually(lambda: stack.status("chat-standard") is InstanceStatus.TERMINATED, timeout=60)
    eventually(lambda: stack.served_by("tiny-chat") == spot, timeout=10, every=0.2)


def test_status_and_plan_cli_read_the_running_stack(stack: Stack, serving: str) -> None:
    from click.testing import CliRunner

    from spotgate.cli import main

    env_file = str(stack.dev.state_dir / "dev.env")
    status = CliRunner().invoke(main, ["--env-file", env_file, "status"], terminal_width=200)
    assert status.exit_code == 0, status.output
    assert serving in status.output
    assert "ready" in status.output
    assert "chat-overflow" in status.output

    plan = CliRunner().invoke(main, ["--env-file", env_file, "plan", "--pool", "chat"], terminal_width=200)
    assert plan.exit_code == 0, plan.output
    assert "plan for pool chat" in plan.output

    unknown = CliRunner().invoke(main, ["--env-file", env_file, "plan", "--pool", "nope"])
    assert unknown.exit_code != 0
    assert "no pool named 'nope'" in unknown.output
