"""The gateway as applications see it: the official OpenAI SDK against sandbox engines, through the gateway."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import openai
import pytest

from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.domain import BackendKind
from tests.gateway.stack import (
    EngineProcess,
    RecordingPublisher,
    RunningGateway,
    a_key,
    a_route,
    wait_until,
)
from tests.sdk import sdk_client

MESSAGES: Any = [{"role": "user", "content": "hello"}]


def a_client(gateway: RunningGateway, key: str, **options: Any) -> openai.OpenAI:
    return sdk_client(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=20, **options)


def serve_chat(store: SqliteStore, engines: Callable[..., EngineProcess], *names: str) -> list[EngineProcess]:
    started = [engines("chat-model", name) for name in names]
    store.put_routes([a_route("chat", e.name, e.url) for e in started])
    return started


def test_a_chat_completion_is_answered_by_a_ready_vm(store, engines, make_gateway) -> None:
    serve_chat(store, engines, "chat-a")
    secret, _ = a_key(store)
    gateway = make_gateway()
    raw = a_client(gateway, secret).chat.completions.with_raw_response.create(model="chat-model", messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert raw.headers["x-spotgate-backend"] == "chat-a"
    assert raw.headers["x-request-id"]


def test_a_stream_arrives_as_chunks_and_ends(store, engines, make_gateway) -> None:
    serve_chat(store, engines, "chat-a")
    secret, _ = a_key(store)
    gateway = make_gateway()
    stream = a_client(gateway, secret).chat.completions.create(
        model="chat-model", messages=MESSAGES, stream=True, max_tokens=8
    )
    chunks = list(stream)
    assert len(chunks) >= 3
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].choices[0].finish_reason == "length"


def test_an_alias_reaches_the_pool_model_and_embeddings_work(store, engines, make_gateway) -> None:
    serve_chat(store, engines, "chat-a")
    embed = engines("embed-model", "embed-a")
    store.put_routes([a_route("embed", embed.name, embed.url)])
    secret, _ = a_key(store)
    client = a_client(make_gateway(), secret)
    assert client.chat.completions.create(model="gpt-test", messages=MESSAGES).model == "chat-model"
    assert len(client.embeddings.create(model="embed-model", input="hello").data[0].embedding) > 0


def test_models_lists_only_the_pools_a_key_may_use(store, make_gateway) -> None:
    secret, _ = a_key(store, pools=("embed",))
    ids = [m.id for m in a_client(make_gateway(), secret).models.list()]
    assert ids == ["embed-model"]


@pytest.mark.parametrize(
    "credential",
    [
        pytest.param("missing", id="missing"),
        pytest.param("wrong", id="wrong"),
        pytest.param("revoked", id="revoked"),
        pytest.param("expired", id="expired"),
        pytest.param("garbage", id="not-a-key-or-token"),
    ],
)
def test_bad_credentials_are_refused_with_401(store, make_gateway, credential: str) -> None:
    a_key(store)
    keys = {
        "missing": "",
        "wrong": "sg-" + "A" * 43,
        "revoked": a_key(store, disabled=True)[0],
        "expired": a_key(store, expires_at=datetime.now(UTC) - timedelta(seconds=1))[0],
        "garbage": "hunter2",
    }
    client = a_client(make_gateway(), keys[credential] or "unused")
    omit: Any = {"Authorization": openai.Omit()} if credential == "missing" else None
    with pytest.raises(openai.AuthenticationError) as raised:
        client.chat.completions.create(model="chat-model", messages=MESSAGES, extra_headers=omit)
    assert raised.value.code == "invalid_api_key"
    assert raised.value.response.headers["x-should-retry"] == "false"


def test_a_pool_outside_the_keys_scope_is_a_model_that_does_not_exist(store, engines, make_gateway) -> None:
    serve_chat(store, engines, "chat-a")
    secret, _ = a_key(store, pools=("embed",))
    with pytest.raises(openai.NotFoundError) as raised:
        a_client(make_gateway(), secret).chat.completions.create(model="chat-model", messages=MESSAGES)
    assert raised.value.code == "model_not_found"


def test_exceeding_the_keys_rpm_gets_429_with_retry_after(store, engines, make_gateway) -> None:
    serve_chat(store, engines, "chat-a")
    secret, _ = a_key(store, rpm=10)  # a burst of rpm / 5 = 2, then one every 6 s
    client = a_client(make_gateway(), secret)
    for _ in range(2):
        client.chat.completions.create(model="chat-model", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="chat-model", messages=MESSAGES)
    assert 1 <= int(raised.value.response.headers["retry-after"]) <= 60


def test_listing_models_counts_against_the_keys_rpm(store, engines, make_gateway) -> None:
    """Regression: GET /v1/models and /v1/models/{id} took no rate token, so a limited key could call them
    without limit."""
    serve_chat(store, engines, "chat-a")
    secret, _ = a_key(store, rpm=10, max_concurrent=1)  # a burst of rpm / 5 = 2, then one every 6 s
    client = a_client(make_gateway(), secret)
    assert [m.id for m in client.models.list()]
    assert client.models.retrieve("chat-model").id == "chat-model"
    with pytest.raises(openai.RateLimitError) as raised:
        client.models.list()
    assert 1 <= int(raised.value.response.headers["retry-after"]) <= 60
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="chat-model", messages=MESSAGES)  # the same bucket


def test_exceeding_the_keys_concurrency_gets_429(store, engines, make_gateway) -> None:
    engine = engines("chat-model", "chat-slow", "--ttft", "0.8")
    store.put_routes([a_route("chat", engine.name, engine.url)])
    secret, _ = a_key(store, max_concurrent=1)
    client = a_client(make_gateway(), secret)
    with client.chat.completions.create(model="chat-model", messages=MESSAGES, stream=True) as first:
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="chat-model", messages=MESSAGES)
        assert list(first)
    assert client.chat.completions.create(model="chat-model", messages=MESSAGES).choices


def test_a_vm_killed_before_the_request_is_skipped_for_another(store, engines, make_gateway) -> None:
    dead, _alive = serve_chat(store, engines, "chat-dead", "chat-alive")
    dead.kill()
    secret, _ = a_key(store)
    client = a_client(make_gateway(), secret)
    served_by = {
        client.chat.completions.with_raw_response.create(model="chat-model", messages=MESSAGES).headers[
            "x-spotgate-backend"
        ]
        for _ in range(6)
    }
    assert served_by == {"chat-alive"}


def test_a_dead_vm_falls_over_to_the_overflow_service(store, engines, make_gateway, metadata, tokens) -> None:
    overflow = engines(
        "burst-model", "burst-overflow", "--audience", "https://burst.run.app",
        "--certs-url", metadata.certs_url, "--invoker", tokens.email,
    )  # fmt: skip
    vm = engines("burst-model", "burst-vm")
    vm.kill()
    store.put_routes(
        [
            a_route("burst", "burst-vm", vm.url),
            a_route("burst", "burst-overflow", overflow.url, kind=BackendKind.OVERFLOW),
        ]
    )
    secret, _ = a_key(store)
    gateway = make_gateway(_overflow_fleet(overflow.url))
    raw = a_client(gateway, secret).chat.completions.with_raw_response.create(model="burst-model", messages=MESSAGES)
    assert raw.headers["x-spotgate-backend"] == "burst-overflow"
    assert tokens.audiences == ["https://burst.run.app"]


def test_no_ready_vm_uses_overflow_and_publishes_one_wake(
    *, store, engines, make_gateway, metadata, tokens, publisher: RecordingPublisher
) -> None:
    overflow = engines(
        "burst-model", "burst-overflow", "--audience", "https://burst.run.app",
        "--certs-url", metadata.certs_url, "--invoker", tokens.email,
    )  # fmt: skip
    store.put_routes([a_route("burst", "burst-overflow", overflow.url, kind=BackendKind.OVERFLOW)])
    secret, _ = a_key(store)
    client = a_client(make_gateway(_overflow_fleet(overflow.url)), secret)
    for _ in range(3):
        assert client.chat.completions.create(model="burst-model", messages=MESSAGES).choices
    assert wait_until(lambda: len(publisher.messages) >= 1)
    topic, message = publisher.messages[0]
    assert (topic, message["kind"], message["pool"], message["v"]) == ("control", "wake", "burst", 1)
    assert len(publisher.messages) == 1  # debounced


def test_no_ready_vm_and_no_overflow_is_503_after_the_hold(store, make_gateway, publisher) -> None:
    secret, _ = a_key(store)
    client = a_client(make_gateway(), secret)
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model="chat-model", messages=MESSAGES)
    assert raised.value.status_code == 503
    assert 1 <= int(raised.value.response.headers["retry-after"]) <= 60
    assert raised.value.code == "no_backend_ready"
    assert wait_until(lambda: [m["pool"] for _, m in publisher.messages] == ["chat"])


def test_a_held_request_is_served_as_soon_as_a_vm_becomes_ready(store, engines, make_gateway) -> None:
    engine = engines("chat-model", "chat-late")
    secret, _ = a_key(store)
    gateway = make_gateway(_overflow_fleet(None, wake_hold="10s"))
    client = a_client(gateway, secret)
    threading.Timer(0.5, lambda: store.put_routes([a_route("chat", engine.name, engine.url)])).start()
    raw = client.chat.completions.with_raw_response.create(model="chat-model", messages=MESSAGES)
    assert raw.headers["x-spotgate-backend"] == "chat-late"


def _overflow_fleet(url: str | None, wake_hold: str = "1s") -> Any:
    from tests.gateway.stack import a_fleet

    return a_fleet(overflow_url=url, wake_hold=wake_hold)
