"""At most once: a request goes to a second backend only when the first provably never received it.

A backend that read the request and closed without answering (``gateway.upstream.UnansweredError``) may have run
it: the caller gets 502 and nothing is replayed, unless it is an inference request of a pool that allows
replay; pass-through requests are never replayed. Such a backend answered the connection, so it is not
ejected as unreachable.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from spotgate.fleet import parse_fleet
from tests.gateway.servers import Script, ScriptedServer
from tests.gateway.stack import a_key, a_route, fleet_document

CHAT = {"model": "chat-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
SENT = 12


def _fleet(*, replay: bool) -> Any:
    document = fleet_document()
    document["pools"][0]["replay_unanswered"] = replay
    return parse_fleet(document)


def _send(url: str, secret: str, method: str, path: str) -> list[int]:
    headers = {"Authorization": f"Bearer {secret}"}
    payload = CHAT if path.startswith("/v1/") else {"x": 1}
    return [requests.request(method, url + path, json=payload, headers=headers, timeout=20).status_code
            for _ in range(SENT)]  # fmt: skip


@pytest.mark.parametrize(
    ("replay", "method", "path", "replayed"),
    [
        pytest.param(False, "POST", "/v1/chat/completions", False, id="inference-not-replayed-by-default"),
        pytest.param(True, "POST", "/v1/chat/completions", True, id="inference-replayed-where-the-pool-allows"),
        pytest.param(True, "POST", "/pools/chat/admin/x", False, id="passthrough-post-never-replayed"),
    ],
)
def test_a_backend_that_hangs_up_after_reading_the_request(
    store, make_gateway, hosts, *, replay: bool, method: str, path: str, replayed: bool
) -> None:
    with ScriptedServer(next(hosts), Script(hang_up=True)) as dropper, ScriptedServer(next(hosts), Script()) as good:
        dropped, served = a_route("chat", "chat-dropper", dropper.url), a_route("chat", "chat-good", good.url)
        store.put_routes([dropped, served])
        secret, _ = a_key(store, passthrough=True)
        gateway = make_gateway(_fleet(replay=replay))
        statuses = _send(gateway.url, secret, method, path)
        received = len(dropper.recorder.requests) + len(good.recorder.requests)
        assert not gateway.gateway.balancer.is_ejected(dropped)
    assert dropper.recorder.requests, "the balancer never picked the dropping backend"
    if replayed:
        assert statuses == [200] * SENT
        assert received == SENT + len(dropper.recorder.requests)
    else:
        assert received == SENT  # each request reached exactly one backend
        assert statuses.count(502) == len(dropper.recorder.requests)
        assert statuses.count(200) == len(good.recorder.requests)


def test_the_answer_to_an_unanswered_request_says_it_was_not_replayed(store, make_gateway, hosts) -> None:
    with ScriptedServer(next(hosts), Script(hang_up=True)) as dropper:
        store.put_routes([a_route("chat", "chat-dropper", dropper.url)])
        secret, _ = a_key(store)
        url = make_gateway().url + "/v1/chat/completions"
        r = requests.post(url, json=CHAT, headers={"Authorization": f"Bearer {secret}"}, timeout=20)
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "bad_gateway"
    assert "may have run" in r.json()["error"]["message"]
    assert len(dropper.recorder.requests) == 1
