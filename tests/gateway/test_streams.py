"""Streams: heartbeats while held, a clear error when a VM dies mid-stream, and hang-ups reach the backend."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import openai
import pytest
import requests

from tests.gateway.servers import RecordingServer
from tests.gateway.stack import a_fleet, a_key, a_route, wait_until
from tests.sdk import sdk_client

STREAM = {"model": "chat-model", "stream": True, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


def sse_lines(gateway, secret: str, payload: dict[str, object]) -> list[str]:
    headers = {"Authorization": f"Bearer {secret}"}
    with requests.post(
        f"{gateway.url}/v1/chat/completions", json=payload, headers=headers, stream=True, timeout=20
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-accel-buffering"] == "no"
        return [line for line in r.iter_lines(decode_unicode=True) if line]


def test_a_held_stream_gets_heartbeats_until_a_vm_is_ready(store, engines, make_gateway) -> None:
    engine = engines("chat-model", "chat-late")
    secret, _ = a_key(store)
    gateway = make_gateway(a_fleet(wake_hold="10s"))
    threading.Timer(1.0, lambda: store.put_routes([a_route("chat", engine.name, engine.url)])).start()
    lines = sse_lines(gateway, secret, STREAM)
    first_data = next(i for i, line in enumerate(lines) if line.startswith("data:"))
    assert first_data >= 2
    assert set(lines[:first_data]) == {": keepalive"}
    assert lines[-1] == "data: [DONE]"


def test_a_slow_first_token_gets_heartbeats_until_it_arrives(store, make_gateway, hosts) -> None:
    with RecordingServer(next(hosts), sse=True, first_event_after=1.0) as backend:
        store.put_routes([a_route("chat", "chat-prefill", backend.url)])
        secret, _ = a_key(store, passthrough=True)
        headers = {"Authorization": f"Bearer {secret}", "Accept": "text/event-stream"}
        url = f"{make_gateway().url}/pools/chat/v1/stream"
        with requests.get(url, headers=headers, stream=True, timeout=20) as r:
            lines = r.iter_lines(decode_unicode=True)
            before = []
            while (line := next(lines)) != "data: 0":
                before.append(line)
    assert {line for line in before if line} == {": keepalive"}
    assert len([line for line in before if line]) >= 2


def test_a_backend_that_withholds_its_headers_until_the_first_token_still_gets_heartbeats(
    store, engines, make_gateway
) -> None:
    engine = engines("chat-model", "chat-slow-prefill", "--ttft", "1.0")
    store.put_routes([a_route("chat", engine.name, engine.url)])
    secret, _ = a_key(store)
    lines = sse_lines(make_gateway(), secret, STREAM)
    first_data = next(i for i, line in enumerate(lines) if line.startswith("data:"))
    assert first_data >= 2
    assert set(lines[:first_data]) == {": keepalive"}
    assert lines[-1] == "data: [DONE]"


def test_a_held_stream_that_finds_no_vm_ends_with_an_error_event(store, make_gateway) -> None:
    secret, _ = a_key(store)
    lines = sse_lines(make_gateway(a_fleet(wake_hold="1s")), secret, STREAM)
    assert ": keepalive" in lines
    assert '"code":"no_backend_ready"' in lines[-1]
    assert lines[-1].startswith('data: {"error":')


def test_a_vm_killed_mid_stream_ends_the_stream_with_an_error(store, engines, make_gateway) -> None:
    engine = engines("chat-model", "chat-dying", "--tokens-per-second", "20")
    store.put_routes([a_route("chat", engine.name, engine.url)])
    secret, _ = a_key(store)
    client = sdk_client(base_url=f"{make_gateway().url}/v1", api_key=secret, max_retries=0, timeout=20)
    stream = client.chat.completions.create(
        model="chat-model", messages=[{"role": "user", "content": "hi"}], stream=True, max_tokens=400
    )
    received: list[object] = []

    def read_then_kill_the_vm() -> None:
        for chunk in stream:
            received.append(chunk)
            if len(received) == 3:
                engine.kill()

    with pytest.raises(openai.APIError, match="interrupted"):
        read_then_kill_the_vm()
    assert len(received) >= 3


def test_a_client_hang_up_closes_the_backend_stream(store, make_gateway, hosts) -> None:
    with RecordingServer(next(hosts), sse=True) as backend:
        store.put_routes([a_route("chat", "chat-sse", backend.url)])
        secret, _ = a_key(store, passthrough=True)
        gateway = make_gateway()
        headers = {"Authorization": f"Bearer {secret}", "Accept": "text/event-stream"}
        with requests.get(f"{gateway.url}/pools/chat/events", headers=headers, stream=True, timeout=20) as r:
            lines = r.iter_lines()
            assert [next(lines) for _ in range(3)] == [b"data: 0", b"", b"data: 1"]
        assert backend.recorder.disconnected.wait(10)
        assert backend.recorder.requests == ["GET /events"]
        assert wait_until(lambda: store.get_activity("chat", datetime.now(UTC)).requests_total == 1)
        assert wait_until(lambda: store.get_activity("chat", datetime.now(UTC)).inflight == 0)


def test_a_caller_gone_before_the_backend_answered_leaks_no_upstream(store, engines, make_gateway) -> None:
    engine = engines("chat-model", "chat-slow-prefill", "--ttft", "1.0")
    store.put_routes([a_route("chat", engine.name, engine.url)])
    secret, _ = a_key(store)
    gateway = make_gateway()
    url = f"{gateway.url}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {secret}"}
    with requests.post(url, json=STREAM, headers=headers, stream=True, timeout=20) as r:
        assert next(r.iter_lines()) == b": keepalive"
    assert wait_until(lambda: store.get_activity("chat", datetime.now(UTC)).requests_total == 1)
    assert wait_until(
        lambda: store.get_activity("chat", datetime.now(UTC)).backend_last_request.keys() == {"chat-slow-prefill"}
    )
    assert wait_until(lambda: store.get_activity("chat", datetime.now(UTC)).inflight == 0)
