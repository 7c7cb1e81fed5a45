"""A key's rpm holds across gateway processes: two gunicorn gateways sharing one store admit at most 1.2 x
the key's rpm in a minute of traffic sent to both (each would admit its full share alone)."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from spotgate.adapters.sqlite_store import SqliteStore
from tests.gateway.gunicorn import free_port, gateway_env, running_gunicorn
from tests.gateway.servers import Script, ScriptedServer
from tests.gateway.stack import a_key, a_route, fleet_document

RPM = 30
WINDOW = 60.0  # the criterion is per minute; one test of this length
CHAT = {"model": "chat-model", "messages": [{"role": "user", "content": "hi"}]}


def hammer(url: str, secret: str, until: float, statuses: list[int]) -> None:
    headers = {"Authorization": f"Bearer {secret}"}
    with requests.Session() as session:
        while time.monotonic() < until:
            statuses.append(
                session.post(f"{url}/v1/chat/completions", json=CHAT, headers=headers, timeout=10).status_code
            )
            time.sleep(0.1)


@pytest.mark.timeout(200)
def test_two_gateways_sharing_a_store_admit_at_most_1_2_times_the_rpm_in_a_minute(tmp_path, hosts) -> None:
    store = SqliteStore(tmp_path / "gateway.db", poll_interval=0.05)
    fleet = fleet_document()
    statuses: list[list[int]] = [[], []]
    try:
        with ScriptedServer(next(hosts), Script(body=b'{"choices":[]}')) as backend:
            store.put_routes([a_route("chat", "chat-vm", backend.url)])
            secret, _ = a_key(store, rpm=RPM)
            env_a = gateway_env(tmp_path / "gateway.db", fleet, free_port())
            env_b = gateway_env(tmp_path / "gateway.db", fleet, free_port())
            with running_gunicorn(env_a) as a, running_gunicorn(env_b) as b:
                until = time.monotonic() + WINDOW
                threads = [threading.Thread(target=hammer, args=(g.url, secret, until, s))
                           for g, s in zip((a, b), statuses, strict=True)]  # fmt: skip
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(WINDOW + 30)
    finally:
        store.close()
    admitted = [s.count(200) for s in statuses]
    assert all(set(s) <= {200, 429} for s in statuses)
    assert all(admitted), "both gateways admitted some requests"
    assert RPM <= sum(admitted) <= 1.2 * RPM, f"admitted {admitted} of {[len(s) for s in statuses]}"


def test_a_keys_concurrency_counts_requests_in_flight_on_other_gateways(store, make_gateway, hosts) -> None:
    from datetime import UTC, datetime

    from tests.gateway.stack import wait_until

    slow, fast = Script(delay=3.0), Script(body=b'{"object":"list","data":[]}')
    with ScriptedServer(next(hosts), slow) as chat, ScriptedServer(next(hosts), fast) as embed:
        store.put_routes([a_route("chat", "chat-vm", chat.url), a_route("embed", "embed-vm", embed.url)])
        secret, key = a_key(store, max_concurrent=1)
        a, b = make_gateway(activity_flush="0.1s"), make_gateway(activity_flush="0.1s")
        headers = {"Authorization": f"Bearer {secret}"}
        first = threading.Thread(
            target=requests.post, args=(f"{a.url}/v1/chat/completions",), kwargs={"json": CHAT, "headers": headers}
        )
        first.start()

        def seen_by_b() -> int | None:
            return store.key_inflight(datetime.now(UTC), exclude=b.gateway.slots.instance).get(key.key_id)

        assert wait_until(lambda: seen_by_b() == 1)
        time.sleep(0.3)  # a few of b's flushes: it has read a's count
        embed_body = {"model": "embed-model", "input": "x"}
        assert requests.post(f"{b.url}/v1/embeddings", json=embed_body, headers=headers, timeout=10).status_code == 429
        first.join(10)
        assert wait_until(
            lambda: (
                requests.post(f"{b.url}/v1/embeddings", json=embed_body, headers=headers, timeout=10).status_code == 200
            )
        )
