"""Protocol details SDKs and callers depend on: ``models.retrieve``, framework errors in the OpenAI shape
with a machine code and ``Allow``, and redirects that never show a backend's address."""

from __future__ import annotations

import json

import openai
import pytest
import requests

from tests.gateway.servers import Script, ScriptedServer
from tests.gateway.stack import a_key, a_route
from tests.sdk import sdk_client


def test_models_retrieve_finds_a_model_of_the_callers_pools(store, make_gateway) -> None:
    secret, _ = a_key(store, pools=("chat",))
    client = sdk_client(base_url=f"{make_gateway().url}/v1", api_key=secret, max_retries=0, timeout=10)
    assert client.models.retrieve("gpt-test").id == "gpt-test"
    for hidden in ("embed-model", "no-such-model"):
        with pytest.raises(openai.NotFoundError) as raised:
            client.models.retrieve(hidden)
        assert raised.value.code == "model_not_found"


@pytest.mark.parametrize(
    ("method", "path", "status", "code", "allow"),
    [
        pytest.param("GET", "/v1/chat/completions", 405, "method_not_allowed", "OPTIONS, POST", id="wrong-method"),
        pytest.param("DELETE", "/healthz", 405, "method_not_allowed", "GET, HEAD, OPTIONS", id="wrong-method-health"),
        pytest.param("GET", "/nowhere", 404, "not_found", None, id="unknown-path"),
    ],
)
def test_framework_errors_have_the_openai_shape(
    store, make_gateway, *, method: str, path: str, status: int, code: str, allow: str | None
) -> None:
    r = requests.request(method, make_gateway().url + path, timeout=10)
    assert r.status_code == status
    assert r.json()["error"]["code"] == code
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert r.headers.get("Allow") == allow


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        pytest.param("{self}/queue/7?x=1", "/pools/chat/queue/7?x=1", id="absolute-on-the-backend"),
        pytest.param("/queue/7", "/pools/chat/queue/7", id="absolute-path"),
        pytest.param("status", "status", id="relative-reference-kept"),
        pytest.param("http://10.128.0.9:8000/queue/7", None, id="another-host-dropped"),
    ],
)
def test_a_redirect_never_shows_a_backend_address(
    store, make_gateway, hosts, *, location: str, expected: str | None
) -> None:
    with ScriptedServer(next(hosts), Script(302, "text/plain", b"", headers=(("Location", location),))) as backend:
        store.put_routes([a_route("chat", "chat-vm", backend.url)])
        secret, _ = a_key(store, passthrough=True)
        url = make_gateway().url + "/pools/chat/submit"
        r = requests.get(url, headers={"Authorization": f"Bearer {secret}"}, allow_redirects=False, timeout=10)
    assert r.status_code == 302
    assert r.headers.get("Location") == expected


def test_a_rewritten_body_keeps_non_ascii_text_as_utf8(store, make_gateway, hosts) -> None:
    """An alias rewrite re-encodes the body; ``\\u`` escapes would make non-ASCII text 2-4x longer than the
    bytes the caller sent and the worker charged to its body budget."""
    text = "你好世界 🚀 " * 500
    body = json.dumps({"model": "gpt-test", "messages": [{"role": "user", "content": text}]}, ensure_ascii=False)
    with ScriptedServer(next(hosts), Script(body=b'{"object":"chat.completion","choices":[]}')) as chat:
        store.put_routes([a_route("chat", "chat-vm", chat.url)])
        secret, _ = a_key(store)
        headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        r = requests.post(f"{make_gateway().url}/v1/chat/completions", data=body.encode(), headers=headers, timeout=10)
        assert r.status_code == 200
        (sent,) = chat.recorder.bodies
    assert len(sent) <= len(body.encode())
    assert json.loads(sent) == {"model": "chat-model", "messages": [{"role": "user", "content": text}]}
