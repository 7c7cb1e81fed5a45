"""Hostile requests get a clean 4xx (or a normal answer from the routing table), and never reach a host
that is not in the routing table: a trap server on another loopback address must see zero requests."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from spotgate.adapters.sqlite_store import SqliteStore
from tests.gateway.servers import RecordingServer, raw_request, send_raw
from tests.gateway.stack import (
    IdentityTokens,
    RecordingPublisher,
    a_fleet,
    a_host,
    a_key,
    a_route,
    gateway_settings,
    start_engine,
    start_gateway,
)

CHAT = json.dumps({"model": "chat-model", "messages": [{"role": "user", "content": "hi"}]})


@pytest.fixture
def trap() -> Iterator[RecordingServer]:
    with RecordingServer(a_host()) as server:
        yield server


@pytest.fixture(scope="module")
def target(tmp_path_factory, metadata, identity) -> Iterator[tuple[str, int, str]]:
    """One engine and one gateway for the whole table (each case is a single stateless request)."""
    store = SqliteStore(tmp_path_factory.mktemp("hostile") / "gateway.db", poll_interval=0.05)
    engine = start_engine(a_host(), "chat-model", "chat-a")
    try:
        store.put_routes([a_route("chat", engine.name, engine.url)])
        secret, _ = a_key(store, passthrough=True)
        tokens = IdentityTokens(identity, "gateway@example.com")
        settings = gateway_settings(certs_url=metadata.certs_url)
        gateway = start_gateway(store, a_fleet(), RecordingPublisher(), tokens, settings)
        try:
            host, port = gateway.url.removeprefix("http://").split(":")
            yield host, int(port), secret
        finally:
            gateway.stop()
    finally:
        engine.kill()
        store.close()


TRAP = "TRAP"  # replaced by the trap server's host:port in each case


@pytest.mark.parametrize(
    ("method", "path", "body", "extra", "expected"),
    [
        pytest.param("GET", "/pools/chat/v1/models", "", "", {200}, id="control-passthrough-ok"),
        pytest.param("POST", "/v1/chat/completions", CHAT, f"X-Forwarded-Host: {TRAP}\r\n", {200},
                     id="x-forwarded-host"),
        pytest.param("POST", "/v1/chat/completions", CHAT, f"Forwarded: host={TRAP}\r\nX-Forwarded-For: {TRAP}\r\n",
                     {200}, id="forwarded"),
        pytest.param("GET", f"http://{TRAP}/pools/chat/v1/models", "", "", {400, 404}, id="absolute-url-target"),
        pytest.param("GET", "/pools/chat/../../etc/passwd", "", "", {400}, id="dotdot"),
        pytest.param("GET", "/pools/chat/v1/../../x", "", "", {400}, id="dotdot-inside"),
        pytest.param("GET", "/pools/chat/%2e%2e/%2E%2E/x", "", "", {400}, id="dotdot-encoded"),
        pytest.param("GET", "/pools/chat/%252e%252e/x", "", "", {400}, id="dotdot-double-encoded"),
        pytest.param("GET", "/pools/chat/..%2f..%2fx", "", "", {400}, id="encoded-slash"),
        pytest.param("GET", "/pools/chat/..%5c..%5cx", "", "", {400}, id="encoded-backslash"),
        pytest.param("GET", f"/pools/chat//{TRAP}/x", "", "", {400, 404}, id="double-slash-authority"),
        pytest.param("GET", f"/pools/chat/%2f%2f{TRAP}/x", "", "", {400, 404}, id="encoded-double-slash"),
        pytest.param("GET", f"/pools/chat/http:%2f%2f{TRAP}/x", "", "", {400, 404}, id="encoded-absolute-url"),
        pytest.param("GET", f"/pools/chat/@{TRAP}/x", "", "", {404}, id="userinfo-lookalike"),
        pytest.param("GET", "/pools/nope/x", "", "", {404}, id="unknown-pool"),
        pytest.param("POST", "/v1/chat/completions", "{not json", "", {400}, id="invalid-json"),
        pytest.param("POST", "/v1/chat/completions", "[1, 2]", "", {400}, id="json-not-an-object"),
        pytest.param("POST", "/v1/chat/completions", '{"messages": []}', "", {400}, id="missing-model"),
        pytest.param("POST", "/v1/chat/completions", '{"model": 7}', "", {400}, id="model-not-a-string"),
        pytest.param("POST", "/v1/chat/completions", '{"model": ["chat-model"]}', "", {400}, id="model-a-list"),
        pytest.param("POST", "/v1/chat/completions", '{"model": "nope"}', "", {404}, id="unknown-model"),
        pytest.param("POST", "/v1/chat/completions", json.dumps({"model": f"http://{TRAP}/v1"}), "", {404},
                     id="model-is-a-url"),
        pytest.param("POST", "/v1/chat/completions", '{"model": "chat-model", "x": "' + "a" * 70_000 + '"}', "",
                     {413}, id="oversized-body"),
        pytest.param("POST", "/v1/chat/completions", CHAT, "X-Test: a\rInjected: b\r\n", {200, 400},
                     id="header-injection-cr"),
        pytest.param("POST", "/v1/files", "{}", "", {404}, id="unknown-endpoint"),
    ],
)  # fmt: skip
def test_hostile_input_never_reaches_a_host_outside_the_table(
    *, target, trap, method: str, path: str, body: str, extra: str, expected: set[int]
) -> None:
    host, port, secret = target
    raw = raw_request(method, path.replace(TRAP, trap.hostport), secret, body=body.replace(TRAP, trap.hostport),
                  extra=extra.replace(TRAP, trap.hostport))  # fmt: skip
    assert send_raw(host, port, raw) in expected
    assert trap.recorder.requests == []


def test_the_host_header_is_never_used_for_routing(target, trap) -> None:
    host, port, secret = target
    assert (
        send_raw(host, port, raw_request("POST", "/v1/chat/completions", secret, body=CHAT, host=trap.hostport)) == 200
    )
    assert trap.recorder.requests == []
