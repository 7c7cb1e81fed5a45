"""Limits before bodies: a key is admitted or refused from its headers alone, and what an admitted key
sends is bounded per worker, per key and in time. Each test opens raw connections that send headers and
hold back (part of) the body, the way a hostile or trickling client would."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

import requests

from gateway.payload import parsed_size
from tests.gateway.stack import a_fleet, a_key, wait_until

BODY_BYTES = 60 * 1024


@contextmanager
def withheld(gateway_url: str, secret: str, *, length: int = BODY_BYTES, sent: bytes = b"") -> Iterator[socket.socket]:
    """A connection that sent a request's headers (and ``sent`` of its body) and withholds the rest."""
    host, port = gateway_url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=10)
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {secret}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n")  # fmt: skip
    conn.sendall(head.encode() + sent)
    try:
        yield conn
    finally:
        conn.close()


def status_of(conn: socket.socket) -> int:
    reply = b""
    while b"\r\n" not in reply:
        chunk = conn.recv(4096)
        if not chunk:
            break
        reply += chunk
    return int(reply.split(b" ", 2)[1])


def test_a_keys_slot_is_taken_from_the_headers_before_any_body_byte(store, make_gateway) -> None:
    secret, _ = a_key(store, max_concurrent=1)
    gateway = make_gateway()
    with withheld(gateway.url, secret):
        assert wait_until(lambda: gateway.gateway.budget.bytes_in_flight == BODY_BYTES)  # the first is admitted
        with withheld(gateway.url, secret) as second:
            assert status_of(second) == 429  # answered although its body was never sent


def test_a_body_that_does_not_arrive_in_time_is_408_and_frees_its_slot(store, make_gateway) -> None:
    secret, _ = a_key(store, max_concurrent=1)
    gateway = make_gateway(body_timeout="0.5s")
    with withheld(gateway.url, secret, sent=b'{"model":') as trickle:
        assert status_of(trickle) == 408
    assert wait_until(lambda: gateway.gateway.budget.bytes_in_flight == 0)
    with withheld(gateway.url, secret) as next_one:
        assert status_of(next_one) == 408  # the slot was given back: admitted again, then timed out


def test_one_key_may_trickle_only_a_few_bodies_at_once(store, make_gateway) -> None:
    secret, _ = a_key(store)  # no rate or concurrency limit of its own
    gateway = make_gateway(max_uploads_per_key=2)
    with withheld(gateway.url, secret), withheld(gateway.url, secret):
        assert wait_until(lambda: gateway.gateway.budget.bytes_in_flight == 2 * BODY_BYTES)
        with withheld(gateway.url, secret) as third:
            assert status_of(third) == 429


def test_one_keys_trickled_bodies_cannot_take_the_budget_every_other_caller_needs(store, make_gateway) -> None:
    """A key may reserve at most half the worker's budget for bodies it is still sending (else one key with
    no concurrency limit withholds a few large declared bodies and every other caller gets 503 busy)."""
    hog, other = a_key(store)[0], a_key(store)[0]
    gateway = make_gateway(max_body_bytes=64 * 1024, max_body_bytes_in_flight=128 * 1024)
    with withheld(gateway.url, hog):
        assert wait_until(lambda: gateway.gateway.budget.bytes_in_flight == BODY_BYTES)
        with withheld(gateway.url, hog) as second:
            assert status_of(second) == 429  # past its share: refused before any of its body is read
        with withheld(gateway.url, other):
            assert wait_until(lambda: gateway.gateway.budget.bytes_in_flight == 2 * BODY_BYTES)  # still room


def test_bodies_in_flight_are_bounded_per_worker(store, make_gateway) -> None:
    secrets = [a_key(store)[0] for _ in range(3)]  # three keys: no per-key bound applies
    gateway = make_gateway(max_body_bytes=64 * 1024, max_body_bytes_in_flight=128 * 1024)
    with ExitStack() as held:
        for secret in secrets[:2]:
            held.enter_context(withheld(gateway.url, secret))
        assert wait_until(lambda: gateway.gateway.budget.bytes_in_flight == 2 * BODY_BYTES)
        third = held.enter_context(withheld(gateway.url, secrets[2]))
        assert status_of(third) == 503
    assert wait_until(lambda: gateway.gateway.budget.bytes_in_flight == 0)


def test_a_bodys_parsed_form_counts_against_the_workers_budget_while_it_exists(store, make_gateway) -> None:
    """A few hundred KiB of ``{"a":1},`` parse into megabytes (the review's 40 such bodies: 91 -> 884 MiB), so
    the budget is charged that from before parsing until the upstream request is built; a held request then
    keeps only its raw bytes (the parsed form is gone), and another body that would parse into more than
    the budget has left is refused."""
    secret, _ = a_key(store)
    items = b'{"a":1},' * 12_000
    body = b'{"model":"chat-model","messages":[],"x":[' + items + b"1]}"
    budget = len(body) + parsed_size(body) + len(body) // 2  # one parse beside one held body, not two bodies
    gateway = make_gateway(a_fleet(wake_hold="3s"), max_body_bytes=256 * 1024, max_body_bytes_in_flight=budget)
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    url = f"{gateway.url}/v1/chat/completions"
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(requests.post, url, data=body, headers=headers, timeout=20)
        assert wait_until(lambda: gateway.gateway.budget.bytes_in_flight == len(body))  # held: its raw bytes
        second = requests.post(url, data=body, headers=headers, timeout=20)
        assert (second.status_code, second.json()["error"]["code"]) == (503, "busy")
        assert first.result().json()["error"]["code"] == "no_backend_ready"  # held, then no VM woke
    assert wait_until(lambda: gateway.gateway.budget.bytes_in_flight == 0)
