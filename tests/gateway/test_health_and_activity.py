"""Live state: health reports live or stale, the last table keeps serving, and activity is flushed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import requests

from spotgate.domain import GatewayActivity
from spotgate.errors import UnavailableError
from tests.gateway.stack import a_fleet, a_key, a_route, gateway_settings, start_gateway, wait_until

CHAT = {"model": "chat-model", "messages": [{"role": "user", "content": "hi"}]}


class FlakyStore:
    """The real store, except that activity writes fail while ``broken`` (an unreachable database)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.broken = False

    def record_activity(self, record: GatewayActivity) -> None:
        if self.broken:
            raise UnavailableError("store unreachable")
        self.inner.record_activity(record)

    def watch(self, on_change: Callable[..., None]) -> Any:
        return self.inner.watch(on_change)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def post(url: str, secret: str) -> requests.Response:
    return requests.post(
        f"{url}/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {secret}"}, timeout=20
    )


def test_health_is_stale_while_the_store_fails_and_requests_are_still_served(
    store, engines, publisher, tokens, metadata
) -> None:
    engine = engines("chat-model", "chat-a")
    store.put_routes([a_route("chat", engine.name, engine.url)])
    secret, _ = a_key(store)
    flaky = FlakyStore(store)
    gateway = start_gateway(flaky, a_fleet(), publisher, tokens, gateway_settings(certs_url=metadata.certs_url))
    try:
        assert requests.get(f"{gateway.url}/healthz", timeout=5).json()["status"] == "live"
        flaky.broken = True
        assert post(gateway.url, secret).status_code == 200
        assert wait_until(lambda: requests.get(f"{gateway.url}/healthz", timeout=5).json()["status"] == "stale")
        assert post(gateway.url, secret).status_code == 200
        flaky.broken = False
        assert wait_until(lambda: requests.get(f"{gateway.url}/healthz", timeout=5).json()["status"] == "live")
        assert wait_until(
            lambda: store.get_activity("chat", datetime.now(UTC)).requests_total == 2
        )  # nothing lost while broken
    finally:
        gateway.stop()


def test_activity_is_flushed_per_pool_with_backend_times(store, engines, make_gateway) -> None:
    engine = engines("chat-model", "chat-a")
    store.put_routes([a_route("chat", engine.name, engine.url)])
    secret, _ = a_key(store)
    gateway = make_gateway()
    for _ in range(3):
        assert post(gateway.url, secret).status_code == 200
    assert wait_until(lambda: store.get_activity("chat", datetime.now(UTC)).requests_total == 3)
    activity = store.get_activity("chat", datetime.now(UTC))
    assert activity.inflight == 0
    assert set(activity.backend_last_request) == {"chat-a"}
    assert activity.last_request_at is not None


def test_every_response_carries_a_sane_request_id(store, make_gateway) -> None:
    gateway = make_gateway()
    echoed = requests.get(f"{gateway.url}/healthz", headers={"x-request-id": "abc-123"}, timeout=5)
    replaced = requests.get(f"{gateway.url}/v1/models", headers={"x-request-id": "bad id\u00e9"}, timeout=5)
    assert echoed.headers["x-request-id"] == "abc-123"
    assert replaced.status_code == 401
    assert replaced.headers["x-request-id"] != "bad id\u00e9"
    assert replaced.json()["error"]["code"] == "invalid_api_key"
