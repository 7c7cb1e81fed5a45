"""Pass-through is scoped: a key needs the explicit scope, and a pool exposes only the methods and path
prefixes it lists. Pools outside a key's scope answer 404 like unknown ones, so their names stay private.
A trap backend records what reached it: only the allowed requests may."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from spotgate.fleet import parse_fleet
from tests.gateway.servers import RecordingServer
from tests.gateway.stack import a_key, a_route, fleet_document

MODELS_ONLY = {"methods": ["GET"], "path_prefixes": ["/v1/models", "/health"]}


def _fleet() -> Any:
    document = fleet_document()
    document["pools"][0]["passthrough"] = MODELS_ONLY
    return parse_fleet(document)


@pytest.mark.parametrize(
    ("scopes", "method", "path", "status", "reached"),
    [
        pytest.param({}, "GET", "/pools/chat/v1/models", 403, None, id="no-passthrough-scope"),
        pytest.param({"passthrough": True}, "GET", "/pools/chat/v1/models", 200, "GET /v1/models", id="allowed"),
        pytest.param(
            {"passthrough": True},
            "GET",
            "/pools/chat/v1/models/a/b",
            200,
            "GET /v1/models/a/b",
            id="below-an-allowed-prefix",
        ),
        pytest.param({"passthrough": True}, "GET", "/pools/chat/v1/modelsx", 404, None, id="prefix-is-whole-segments"),
        pytest.param({"passthrough": True}, "GET", "/pools/chat/metrics", 404, None, id="unlisted-path"),
        pytest.param(
            {"passthrough": True},
            "GET",
            "/pools/chat/v1/models/..;/..;/metrics",
            400,
            None,
            id="dotdot-with-path-parameters-escapes-no-prefix",
        ),
        pytest.param({"passthrough": True}, "DELETE", "/pools/chat/v1/models", 405, None, id="unlisted-method"),
        pytest.param({"passthrough": True}, "POST", "/pools/burst/admin/x", 404, None, id="pool-exposing-nothing"),
        pytest.param(
            {"passthrough": True, "pools": ("embed",)},
            "GET",
            "/pools/chat/v1/models",
            404,
            None,
            id="pool-outside-the-key-is-404",
        ),
        pytest.param(
            {"passthrough": True},
            "GET",
            "/pools/chat/v1/models/org%2Fname",
            200,
            "GET /v1/models/org%2Fname",
            id="encoded-slash-kept",
        ),
    ],
)
def test_pass_through_scope(
    store, make_gateway, hosts, *, scopes: dict[str, Any], method: str, path: str, status: int, reached: str | None
) -> None:
    with RecordingServer(next(hosts)) as backend:
        store.put_routes([a_route("chat", "chat-vm", backend.url), a_route("burst", "burst-vm", backend.url)])
        secret, _ = a_key(store, **scopes)
        r = requests.request(
            method, make_gateway(_fleet()).url + path, headers={"Authorization": f"Bearer {secret}"}, timeout=10
        )
    assert r.status_code == status
    assert backend.recorder.requests == ([reached] if reached else [])
    if status == 405:
        assert r.headers["Allow"] == "GET"
    if status >= 400:
        assert r.json()["error"]["code"] in {"permission_denied", "not_found", "method_not_allowed", "invalid_path"}


def test_a_pool_outside_the_keys_scope_reads_like_an_unknown_one(store, make_gateway) -> None:
    secret, _ = a_key(store, passthrough=True, pools=("embed",))
    gateway = make_gateway()
    headers = {"Authorization": f"Bearer {secret}"}
    hidden = requests.get(f"{gateway.url}/pools/chat/x", headers=headers, timeout=10)
    unknown = requests.get(f"{gateway.url}/pools/nope/x", headers=headers, timeout=10)
    assert (hidden.status_code, unknown.status_code) == (404, 404)
    assert hidden.json()["error"]["message"].replace("chat", "nope") == unknown.json()["error"]["message"]
    chat = {"model": "chat-model", "messages": []}
    model = requests.post(f"{gateway.url}/v1/chat/completions", json=chat, headers=headers, timeout=10)
    assert model.status_code == 404
    assert model.json()["error"]["code"] == "model_not_found"
