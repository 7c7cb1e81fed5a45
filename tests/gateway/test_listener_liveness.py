"""A routing-table listener that dies silently is replaced, and a store that cannot be resubscribed to turns
``/healthz`` stale: revocations and new keys keep arriving within ``max_snapshot_age``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

from spotgate.errors import UnavailableError
from spotgate.ports import Snapshot
from tests.gateway.stack import a_fleet, a_key, gateway_settings, start_gateway, wait_until


class DeadListenerStore:
    """The real store, except that its first subscription goes silent after its first snapshot (a listener
    whose stream died) and, while ``down``, new subscriptions fail."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.watches = 0
        self.down = False

    def watch(self, on_change: Callable[[Snapshot], None]) -> Any:
        self.watches += 1
        if self.down:
            raise UnavailableError("store unreachable")
        if self.watches > 1:
            return self.inner.watch(on_change)
        delivered: list[Snapshot] = []

        def first_only(snapshot: Snapshot) -> None:
            if not delivered:
                delivered.append(snapshot)
                on_change(snapshot)

        return self.inner.watch(first_only)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def health(url: str) -> str:
    return str(requests.get(f"{url}/healthz", timeout=5).json()["status"])


def models_status(url: str, secret: str) -> int:
    return requests.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {secret}"}, timeout=5).status_code


def test_a_silent_listener_is_replaced_and_a_failing_store_turns_health_stale(
    store, publisher, tokens, metadata
) -> None:
    dead = DeadListenerStore(store)
    settings = gateway_settings(certs_url=metadata.certs_url, max_snapshot_age="1s")
    gateway = start_gateway(dead, a_fleet(), publisher, tokens, settings)
    try:
        secret, _ = a_key(store)  # written after the first (soon silent) subscription delivered
        assert wait_until(lambda: models_status(gateway.url, secret) == 200)
        assert health(gateway.url) == "live"
        dead.down = True
        assert wait_until(lambda: health(gateway.url) == "stale")
        assert models_status(gateway.url, secret) == 200  # the last table keeps serving
        dead.down = False
        assert wait_until(lambda: health(gateway.url) == "live")
    finally:
        gateway.stop()
