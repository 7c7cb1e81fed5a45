"""The access line says how a request went: held while a VM woke, failed over past a dead VM, and the
tokens the backend reported, for plain answers and streams alike."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from spotgate.domain import BackendKind
from tests.gateway.servers import Script, ScriptedServer
from tests.gateway.stack import a_fleet, a_key, a_route, wait_until

CHAT = {"model": "chat-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}


def access_lines(caplog: pytest.LogCaptureFixture) -> dict[str, dict[str, Any]]:
    lines = [r.__dict__ for r in caplog.records if r.name == "gateway.access"]
    return {str(line["request_id"]): line for line in lines}


def post(url: str, secret: str, rid: str, payload: dict[str, Any]) -> int:
    headers = {"Authorization": f"Bearer {secret}", "x-request-id": rid}
    with requests.post(f"{url}/v1/chat/completions", json=payload, headers=headers, timeout=20) as r:
        r.content  # noqa: B018 - read it all: the line is written when the response closes
        return r.status_code


def test_access_lines_carry_held_failover_and_tokens(store, engines, make_gateway, caplog) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    overflow = engines("burst-model", "burst-overflow")
    chat = engines("chat-model", "chat-late")
    dead = a_route("burst", "burst-dead", "http://127.0.0.1:9")  # nothing listens: refused
    store.put_routes([dead, a_route("burst", "burst-overflow", overflow.url, kind=BackendKind.OVERFLOW)])
    secret, key = a_key(store)
    gateway = make_gateway(a_fleet(overflow_url=overflow.url, wake_hold="10s"))
    assert post(gateway.url, secret, "failover", {**CHAT, "model": "burst-model"}) == 200
    threading.Timer(0.5, lambda: store.put_routes([a_route("chat", chat.name, chat.url)])).start()
    assert post(gateway.url, secret, "held", CHAT) == 200
    assert post(gateway.url, secret, "stream", {**CHAT, "stream": True}) == 200
    assert wait_until(lambda: {"failover", "held", "stream"} <= set(access_lines(caplog)))
    lines = access_lines(caplog)
    failover, held, stream = lines["failover"], lines["held"], lines["stream"]
    assert (failover["failed_over"], failover["backend"], failover["backend_kind"]) == (
        True,
        "burst-overflow",
        "overflow",
    )
    assert (held["held"], held["failed_over"], held["backend"]) == (True, False, "chat-late")
    assert (stream["held"], stream["tokens_out"]) == (False, 3)
    assert all(line["caller"] == key.key_id and line["tokens_in"] > 0 for line in lines.values())
    assert all(line["duration_ms"] >= line["ttfb_ms"] > 0 for line in lines.values())


@pytest.mark.parametrize(
    ("options", "usage_events"),
    [
        pytest.param(None, 0, id="not-asked-stripped"),
        pytest.param({"include_usage": False}, 0, id="declined-stripped"),
        pytest.param({"include_usage": True}, 1, id="asked-kept"),
    ],
)
def test_stream_usage_is_counted_and_relayed_only_when_asked(
    store, engines, make_gateway, caplog, *, options: dict[str, bool] | None, usage_events: int
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    engine = engines("chat-model", "chat-a")
    store.put_routes([a_route("chat", engine.name, engine.url)])
    secret, _ = a_key(store)
    payload: dict[str, Any] = {**CHAT, "stream": True}
    if options is not None:
        payload["stream_options"] = options
    headers = {"Authorization": f"Bearer {secret}", "x-request-id": "s"}
    url = make_gateway().url + "/v1/chat/completions"
    with requests.post(url, json=payload, headers=headers, timeout=20) as r:
        events = [line for line in r.iter_lines(decode_unicode=True) if line.startswith("data: {")]
    assert sum('"choices":[]' in e for e in events) == usage_events
    assert wait_until(lambda: "s" in access_lines(caplog))
    assert access_lines(caplog)["s"]["tokens_out"] == 3


def test_usage_is_recorded_per_key_and_pool_in_the_store(store, engines, make_gateway) -> None:
    engine = engines("chat-model", "chat-a")
    store.put_routes([a_route("chat", engine.name, engine.url)])
    secret, key = a_key(store)
    gateway = make_gateway()
    for rid, payload in (("u1", CHAT), ("u2", {**CHAT, "stream": True})):
        assert post(gateway.url, secret, rid, payload) == 200
    since = datetime.now(UTC) - timedelta(hours=1)
    assert wait_until(lambda: sum(u.requests for u in store.list_usage(since)) == 2)
    (usage,) = store.list_usage(since)
    assert (usage.key_id, usage.pool, usage.requests, usage.tokens_out) == (key.key_id, "chat", 2, 6)
    assert usage.tokens_in > 0
    assert usage.gpu_seconds > 0


def test_gpu_seconds_of_a_plain_answer_include_the_time_the_backend_took_to_answer(store, make_gateway, hosts) -> None:
    """A non-streaming engine computes the whole answer before its response headers, so backend time runs
    from when the request was sent, not from the headers (which would count only the body transfer)."""
    usage = b'{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}'
    with ScriptedServer(next(hosts), Script(delay=1.0, body=usage)) as engine:
        store.put_routes([a_route("chat", "chat-slow", engine.url)])
        secret, _ = a_key(store)
        assert post(make_gateway().url, secret, "slow", CHAT) == 200
        since = datetime.now(UTC) - timedelta(hours=1)
        assert wait_until(lambda: sum(u.requests for u in store.list_usage(since)) == 1)
    (recorded,) = store.list_usage(since)
    assert (recorded.tokens_in, recorded.tokens_out) == (5, 7)
    assert recorded.gpu_seconds >= 1.0  # the backend's delay is a floor, whatever the machine's speed
