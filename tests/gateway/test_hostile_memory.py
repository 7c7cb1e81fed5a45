"""One hostile key cannot take a gateway worker's memory: the production gunicorn worker's peak RSS stays
bounded while a key limited to 1 rpm and 1 concurrent request sends three concurrent 10 MiB bodies of
empty JSON objects (the review's reproduction: 94 -> 614 MiB), and an unlimited key sends six concurrent
10 MiB bodies of text that the gateway must hold while no VM is ready, then forty concurrent 770 KiB bodies
of one-member objects, within every byte bound but parsing into ~20 MiB each (91 -> 884 MiB when only
their bytes counted)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests

from spotgate.adapters.sqlite_store import SqliteStore
from tests.gateway.gunicorn import free_port, gateway_env, peak_rss_mib, running_gunicorn
from tests.gateway.stack import a_key, fleet_document

TEN_MIB = 10 * 1024 * 1024 - 1024
GROWTH_LIMIT_MIB = 160  # the worker budget holds 32 MiB of bodies; the fixed gateway peaks near 100 MiB above idle


def empty_objects() -> bytes:
    head, tail = b'{"model":"chat-model","messages":[],"x":[', b"{}]}"
    return head + b"{}," * ((TEN_MIB - len(head) - len(tail)) // 3) + tail


def long_text() -> bytes:
    head = b'{"model":"chat-model","messages":[{"role":"user","content":"'
    return head + b"a" * (TEN_MIB - len(head) - 4) + b'"}]}'


def small_objects() -> bytes:
    return b'{"model":"chat-model","messages":[],"x":[' + b'{"a":1},' * 99_000 + b"1]}"


def post_all(url: str, secret: str, body: bytes, count: int) -> list[int]:
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}

    def post(_: int) -> int:
        return requests.post(f"{url}/v1/chat/completions", data=body, headers=headers, timeout=60).status_code

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(post, range(count)))


def test_a_hostile_key_cannot_grow_the_worker_past_a_bound(tmp_path) -> None:
    store = SqliteStore(tmp_path / "gateway.db", poll_interval=0.05)
    limited, _ = a_key(store, rpm=1, max_concurrent=1)
    unlimited, _ = a_key(store)
    fleet = fleet_document(wake_hold="1s")
    try:
        with running_gunicorn(gateway_env(tmp_path / "gateway.db", fleet, free_port())) as gunicorn:
            (worker,) = gunicorn.worker_pids()
            # the limited key's only rate token is for its bodies: listing models would spend it
            assert requests.get(f"{gunicorn.url}/v1/models", headers={"Authorization": f"Bearer {unlimited}"},
                                timeout=10).status_code == 200  # fmt: skip
            idle = peak_rss_mib(worker)
            statuses = post_all(gunicorn.url, limited, empty_objects(), 3)
            held = post_all(gunicorn.url, unlimited, long_text(), 6)
            parsed = post_all(gunicorn.url, unlimited, small_objects(), 40)
            peak = peak_rss_mib(worker)
            health = requests.get(f"{gunicorn.url}/healthz", timeout=10).json()
    finally:
        store.close()
    assert peak - idle < GROWTH_LIMIT_MIB, f"worker grew from {idle:.0f} to {peak:.0f} MiB"
    assert sorted(statuses) in ([400, 429, 429], [429, 429, 429])  # one admitted and refused as too many elements
    assert held
    # no VM: held, then 503; or refused at once: the worker's budget is full (503) or the key's share is (429)
    assert set(held) <= {429, 503}
    assert set(parsed) <= {429, 503}
    assert health["status"] == "live"
