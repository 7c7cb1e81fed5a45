"""End to end: streams survive preemption, with the early notice (finish in place) or by continuation.

The whole local system (sandbox, both functions, gateway) with two pools: ``notice`` has GCE's early
preemption notice (120 s, 4 s here at 30x), which the control plane applies with ``setScheduling`` before
starting its VMs; ``cut`` has none, so a preempted VM is soft-off at once and killed 30 s (1 s here) later,
mid-answer. Both pools keep two VMs ready, so there is always somewhere else to go.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from openai import OpenAI

from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.domain import RouteState
from spotgate.fleet import FleetConfig, parse_fleet
from spotgate.sandbox.devstack.stack import DevOptions, DevStack
from tests.e2e.access_log import AccessCheck
from tests.e2e.test_recovery import eventually
from tests.sdk import sdk_client

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
QUESTION: Any = [{"role": "user", "content": "how do streams survive a preemption"}]


def a_pool(name: str, port: int, **extra: Any) -> dict[str, Any]:
    pool = {"name": name, "model": f"{name}-model", "spot": {"zones": ["us-central1-a", "us-central1-b"]},
            "engine": {"port": port}, "min_ready": 2, "max_ready": 2, "idle_timeout": "1h", "drain_grace": "1s",
            "min_uptime": "0s"}  # fmt: skip
    return {**pool, **extra}


def fleet() -> FleetConfig:
    sandbox = {"speedup": 30, "boot_delay": "60s", "load_delay": "30s", "stop_delay": "10s", "preempt_notice": "30s",
               "time_to_first_token": "30ms", "tokens_per_second": 5, "overflow_cold_start": "20s"}  # fmt: skip
    pools = [a_pool("notice", 8000, preemption_notice="120s"), a_pool("cut", 8001)]
    return parse_fleet({"project": "spotgate-e2e", "region": "us-central1", "pools": pools, "sandbox": sandbox})


# Every request these tests send through the gateway must have its one JSON access line, and no log of the
# stack may hold the API key (checked once the stack has stopped and every line is written).
ACCESS = AccessCheck()


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    with DevStack(fleet(), tmp_path_factory.mktemp("streams"), DevOptions(startup_timeout=120)) as stack:
        yield stack
    ACCESS.verify(stack.state_dir / "logs", stack.api_key)


def ready_vms(store: SqliteStore, pool: str) -> list[str]:
    return sorted(r.backend for r in store.list_routes(pool) if r.state is RouteState.READY and r.kind.value == "vm")


def route_state(store: SqliteStore, pool: str, backend: str) -> RouteState | None:
    return next((r.state for r in store.list_routes(pool) if r.backend == backend), None)


@pytest.fixture(scope="module")
def store(dev: DevStack) -> Iterator[SqliteStore]:
    opened = SqliteStore(dev.db_path)
    try:
        yield opened
    finally:
        opened.close()


def two_ready(store: SqliteStore, pool: str) -> None:
    eventually(lambda: len(ready_vms(store, pool)) == 2, timeout=90)


def client(dev: DevStack) -> OpenAI:
    return sdk_client(
        base_url=dev.gateway_url + "/v1", api_key=dev.api_key, max_retries=0, timeout=60, http_client=ACCESS.client()
    )


def stream_lines(dev: DevStack, model: str, max_tokens: int, *, preempt_after: int) -> tuple[str, list[str]]:
    """Stream a chat answer; preempt the answering VM after ``preempt_after`` chunks. (backend, SSE lines)."""
    with client(dev).chat.completions.with_streaming_response.create(
        model=model, messages=QUESTION, stream=True, max_tokens=max_tokens, extra_body={"min_tokens": max_tokens}
    ) as response:
        backend = str(response.headers["x-spotgate-backend"])
        lines: list[str] = []
        for line in response.iter_lines():
            lines += [line] if line else []
            if line.startswith("data: {") and sum(1 for x in lines if x.startswith("data: {")) == preempt_after:
                dev.cloud.compute.preempt(backend)
    return backend, lines


def text_of(lines: list[str]) -> str:
    chunks = [json.loads(x[6:]) for x in lines if x.startswith("data: {")]
    assert not any("error" in c for c in chunks), chunks
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def uncut(dev: DevStack, model: str, max_tokens: int) -> str:
    answer = client(dev).chat.completions.create(
        model=model, messages=QUESTION, max_tokens=max_tokens, extra_body={"min_tokens": max_tokens}
    )
    return answer.choices[0].message.content or ""


def test_with_the_notice_a_stream_in_flight_finishes_on_its_vm_and_nothing_new_goes_there(
    dev: DevStack, store: SqliteStore
) -> None:
    two_ready(store, "notice")
    assert all(dev.cloud.compute.find(vm).preemption_notice == 120 for vm in ready_vms(store, "notice"))

    # 300 tokens take 2 s: longer than the 1 s a VM has after its soft-off, shorter than the 4 s notice.
    backend, lines = stream_lines(dev, "notice-model", 300, preempt_after=3)

    assert text_of(lines) == uncut(dev, "notice-model", 300)
    assert lines[-1] == "data: [DONE]"
    assert not any(line.startswith(": spotgate-continued") for line in lines)  # finished where it began
    eventually(lambda: route_state(store, "notice", backend) is RouteState.DRAINING, timeout=10, every=0.02)
    served = set()
    for _ in range(6):
        raw = client(dev).chat.completions.with_raw_response.create(model="notice-model", messages=QUESTION)
        served.add(raw.headers["x-spotgate-backend"])
    assert backend not in served


def test_without_the_notice_a_preempted_stream_is_continued_elsewhere_with_the_uncut_text(
    dev: DevStack, store: SqliteStore
) -> None:
    two_ready(store, "cut")

    _, lines = stream_lines(dev, "cut-model", 600, preempt_after=3)  # ~4 s; killed 1 s after the preemption

    assert text_of(lines) == uncut(dev, "cut-model", 600)
    assert ": spotgate-continued 1" in lines
    assert lines.count("data: [DONE]") == 1
    ids = {json.loads(x[6:])["id"] for x in lines if x.startswith("data: {")}
    assert len(ids) == 1
