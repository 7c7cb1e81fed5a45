"""Where requests were served, counted by the gateway per pool and minute for ``spotgate report``."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from gateway.access import Exchange
from gateway.served import served_kind
from spotgate.domain import BackendKind
from tests.gateway.stack import a_fleet, a_key, a_route, wait_until
from tests.gateway.test_access_log import CHAT, post


@pytest.mark.parametrize(
    ("changes", "status", "kind"),
    [
        pytest.param({"pool": "chat", "backend": "chat-a", "kind": "vm"}, 200, "vm", id="ready-vm"),
        pytest.param({"pool": "chat", "backend": "chat-a", "kind": "vm", "held": True}, 200, "held_then_vm", id="held"),
        pytest.param({"pool": "chat", "backend": "chat-o", "kind": "overflow"}, 200, "overflow", id="overflow"),
        pytest.param({"pool": "chat", "backend": "chat-a", "kind": "vm"}, 502, "vm", id="a-vm-that-failed-was-its"),
        pytest.param({"pool": "chat"}, 503, "refused_503", id="no-backend-503-is-refused"),
        pytest.param({"pool": "chat"}, 400, None, id="client-error-before-a-backend-not-counted"),
        pytest.param({}, 401, None, id="never-routed-to-a-pool-not-counted"),
    ],
)
def test_served_kind(changes: dict[str, object], status: int, kind: str | None) -> None:
    exchange = Exchange("r", "POST", "/v1/chat/completions", 0.0, **changes)  # type: ignore[arg-type]
    assert served_kind(exchange, status) == kind


def test_the_gateway_counts_where_each_request_was_served(store, engines, make_gateway) -> None:
    overflow = engines("burst-model", "burst-overflow")
    chat = engines("chat-model", "chat-late")
    store.put_routes([a_route("burst", "burst-overflow", overflow.url, kind=BackendKind.OVERFLOW)])
    secret, _ = a_key(store)
    gateway = make_gateway(a_fleet(overflow_url=overflow.url, wake_hold="10s"))
    since = datetime.now(UTC) - timedelta(minutes=1)
    assert post(gateway.url, secret, "o", {**CHAT, "model": "burst-model"}) == 200
    threading.Timer(0.5, lambda: store.put_routes([a_route("chat", chat.name, chat.url)])).start()
    assert post(gateway.url, secret, "held", CHAT) == 200
    assert post(gateway.url, secret, "ready", {**CHAT, "stream": True}) == 200

    def counts() -> dict[tuple[str, str], int]:
        found: dict[tuple[str, str], int] = {}
        for pool in ("chat", "burst"):
            for c in store.list_served(pool, since):
                found[pool, c.kind] = found.get((pool, c.kind), 0) + c.requests
        return found

    expected = {("burst", "overflow"): 1, ("chat", "held_then_vm"): 1, ("chat", "vm"): 1}
    assert wait_until(lambda: counts() == expected), counts()
