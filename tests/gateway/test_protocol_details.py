"""Protocol details SDKs and callers depend on: ``models.retrieve``, framework errors in the OpenAI shape
with a machine code and ``Allow``, and redirects that never show a backend's address."""

from __future__ import annotations

import json

import openai
import pytest
import requests

from tests.gateway.servers import Script, ScriptedServer, send_raw
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


def test_a_backend_gets_the_callers_end_to_end_headers_and_nothing_of_theirs(store, make_gateway, hosts) -> None:
    """Forwarded as the caller named them: end-to-end headers. Never: the caller's credentials, hop-by-hop
    headers (those ``Connection`` lists too), routing claims, a value with a control character; the
    gateway sets ``x-request-id`` (the caller's, when sane) and ``Content-Length`` itself."""
    with ScriptedServer(next(hosts), Script(body=b'{"object":"list","data":[]}')) as backend:
        store.put_routes([a_route("embed", "embed-vm", backend.url)])
        secret, _ = a_key(store)
        host, port = make_gateway().url.removeprefix("http://").split(":")
        body = json.dumps({"model": "embed-model", "input": "hi"})
        sent = {
            "Authorization": f"Bearer {secret}", "Cookie": "session=1", "X-Goog-Api-Key": "k",
            "Proxy-Authorization": "p", "X-Forwarded-For": "10.0.0.1", "X-Real-IP": "10.0.0.2",
            "Forwarded": "for=x", "X-Cloud-Trace-Context": "t", "Connection": "keep-alive, X-Hop",
            "X-Hop": "dropped", "Keep-Alive": "timeout=5", "Te": "trailers", "Content-Type": "application/json",
            "OpenAI-Organization": "org-1", "x-custom-thing": "kept", "User-Agent": "tester/1",
            "x-request-id": "rid-7",
        }  # fmt: skip
        head = "".join(f"{name}: {value}\r\n" for name, value in sent.items())
        head = f"POST /v1/embeddings HTTP/1.1\r\nHost: gw\r\n{head}Content-Length: {len(body)}\r\n\r\n"
        assert send_raw(host, int(port), head, body.encode()) == 200
    received = dict(backend.recorder.headers[0])
    forwarded = {"Content-Type", "Openai-Organization", "X-Custom-Thing", "User-Agent", "x-request-id"}
    assert forwarded <= set(received)
    assert received["x-request-id"] == "rid-7"
    assert received["Content-Length"] == str(len(body))
    assert {name.lower() for name in received} - {name.lower() for name in forwarded} <= {
        "content-length", "host", "accept-encoding", "accept", "connection",
    }  # fmt: skip
    assert received.get("Connection", "keep-alive").lower() == "keep-alive"  # urllib3's own, not the caller's
