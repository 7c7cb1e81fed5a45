"""Open streams hold only their raw request bytes in the worker's body budget, not what the body parsed into.

Regression: the parsed size of a JSON body (``payload.parsed_size``, several times its bytes for a request
with tools and a conversation) stayed reserved until the response ended, because continuation kept the
parsed body for the whole stream; a worker then held far fewer concurrent streams than its budget allows.
Now the reservation ends once the view has built the upstream request, and continuation parses the raw
bytes only when a stream is cut.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack

import requests

from gateway.payload import parsed_size
from tests.gateway.stack import a_key, a_route, wait_until

TOOLS = [
    {"type": "function", "function": {"name": f"tool_{i}", "description": "Look something up", "parameters": {
        "type": "object", "properties": {"q": {"type": "string"}, "n": {"type": "integer"}}, "required": ["q"]}}}
    for i in range(10)
]  # fmt: skip
MESSAGES = [{"role": ("user", "assistant")[i % 2], "content": f"message {i} with a bit of text"} for i in range(20)]
BODY = json.dumps({"model": "chat-model", "messages": MESSAGES, "tools": TOOLS, "stream": True, "max_tokens": 200})
STREAMS = 20
BUDGET = 128 * 1024


def test_many_open_streams_with_a_mid_size_body_fit_the_body_budget(store, engines, make_gateway) -> None:
    raw, parsed = len(BODY.encode()), parsed_size(BODY.encode())
    # every stream and one parse in progress fit; every stream holding its parsed size too would not
    assert STREAMS * raw + parsed <= BUDGET < STREAMS * (raw + parsed)
    engine = engines("chat-model", "chat-a", "--tokens-per-second", "2")  # each stream lasts 100 s unless closed
    store.put_routes([a_route("chat", engine.name, engine.url)])
    secret, _ = a_key(store)
    gateway = make_gateway(max_body_bytes=64 * 1024, max_body_bytes_in_flight=BUDGET)
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    statuses: list[int] = []
    reading: list[Iterator[bytes]] = []  # kept: a dropped line iterator closes its response
    with ExitStack() as streams:
        for _ in range(STREAMS):
            response = streams.enter_context(
                requests.post(f"{gateway.url}/v1/chat/completions", data=BODY, headers=headers, stream=True, timeout=20)
            )
            statuses.append(response.status_code)
            if response.status_code == 200:
                reading.append(response.iter_lines())
                next(reading[-1])  # the stream is open: its request has been forwarded
        held = gateway.gateway.budget.bytes_in_flight
    assert statuses == [200] * STREAMS
    assert held == STREAMS * raw  # the raw bodies only
    assert wait_until(lambda: gateway.gateway.budget.bytes_in_flight == 0, timeout=10)  # closed streams give back
