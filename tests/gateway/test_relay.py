"""One relay for every path: what the caller sees of a backend's answer, direct or inside a held stream.

Each row sends one request on one path to a backend scripted to give one answer and checks the status the
caller got, the error type, and the body. A held stream has already answered 200 (it sent heartbeats while
the backend was slow), so there the backend's answer must arrive intact inside the stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.gateway.servers import Script, ScriptedServer
from tests.gateway.stack import a_key, a_route

VLLM_400 = {"error": {"message": "max_tokens is too large", "type": "BadRequestError", "param": None, "code": 400}}
SSE = b'data: {"id":"c1"}\n\ndata: [DONE]\n\n'
SLOW = 0.7  # seconds before the backend's headers: more than the test gateway's 200 ms heartbeat


@dataclass(frozen=True)
class Path:
    method: str
    url: str
    stream: bool  # the caller asks for SSE
    held: bool  # the backend is slower than a heartbeat, so the gateway answers 200 SSE first


DIRECT = Path("POST", "/v1/chat/completions", stream=False, held=False)
DIRECT_STREAM = Path("POST", "/v1/chat/completions", stream=True, held=False)
HELD_STREAM = Path("POST", "/v1/chat/completions", stream=True, held=True)
PASS = Path("GET", "/pools/chat/v1/models", stream=False, held=False)
PASS_HELD = Path("GET", "/pools/chat/v1/models", stream=True, held=True)

ERROR_400 = Script(400, body=json.dumps(VLLM_400).encode())
JSON_200 = Script(200, body=b'{"object":"list","data":[]}')
TEXT_500 = Script(500, "text/plain", b"engine exploded")
REFUSED_401 = Script(401, body=b'{"detail":"no"}')
SSE_200 = Script(200, "text/event-stream", SSE)
GATEWAY_REFUSED = {"message": "Backend chat-vm refused the gateway (401).", "type": "api_error", "param": None,
                   "code": "bad_gateway"}  # fmt: skip
TEXT_500_ERROR = {"message": "engine exploded", "type": "api_error", "param": None, "code": "upstream_500"}

# (path, backend answer, status the caller gets, error object or None, body data)
ROWS = [
    pytest.param(DIRECT, ERROR_400, 400, VLLM_400["error"], None, id="direct-400-keeps-backend-error"),
    pytest.param(DIRECT, JSON_200, 200, None, JSON_200.body, id="direct-200-json"),
    pytest.param(DIRECT, TEXT_500, 500, None, b"engine exploded", id="direct-500-text-as-is"),
    pytest.param(DIRECT, REFUSED_401, 502, GATEWAY_REFUSED, None, id="direct-401-is-bad-gateway"),
    pytest.param(DIRECT_STREAM, ERROR_400, 400, VLLM_400["error"], None, id="stream-400-keeps-backend-error"),
    pytest.param(DIRECT_STREAM, SSE_200, 200, None, SSE, id="stream-200-sse"),
    pytest.param(DIRECT_STREAM, REFUSED_401, 502, GATEWAY_REFUSED, None, id="stream-401-is-bad-gateway"),
    pytest.param(HELD_STREAM, ERROR_400, 200, VLLM_400["error"], None, id="held-400-keeps-backend-error"),
    pytest.param(HELD_STREAM, TEXT_500, 200, TEXT_500_ERROR, None, id="held-500-text-as-error-event"),
    pytest.param(HELD_STREAM, REFUSED_401, 200, GATEWAY_REFUSED, None, id="held-401-is-bad-gateway"),
    pytest.param(HELD_STREAM, SSE_200, 200, None, SSE, id="held-200-sse"),
    pytest.param(PASS, JSON_200, 200, None, JSON_200.body, id="passthrough-200-json"),
    pytest.param(PASS, ERROR_400, 400, VLLM_400["error"], None, id="passthrough-400"),
    pytest.param(PASS_HELD, JSON_200, 200, None, b"data: " + JSON_200.body + b"\n\n", id="passthrough-held-json"),
    pytest.param(PASS_HELD, ERROR_400, 200, VLLM_400["error"], None, id="passthrough-held-400"),
]


@pytest.mark.parametrize(("path", "script", "status", "error", "body"), ROWS)
def test_every_path_relays_the_backends_answer(
    store, make_gateway, hosts, *, path: Path, script: Script, status: int, error: Any, body: bytes | None
) -> None:
    slow = Script(**{**script.__dict__, "delay": SLOW if path.held else 0.0})
    with ScriptedServer(next(hosts), slow) as backend:
        store.put_routes([a_route("chat", "chat-vm", backend.url)])
        secret, _ = a_key(store, passthrough=True)
        got_status, got_body, held = _call(make_gateway().url, secret, path)
    assert got_status == status
    assert held == path.held
    if error is not None:
        assert _error_of(got_body) == error
    else:
        assert got_body == body


def _call(base: str, secret: str, path: Path) -> tuple[int, bytes, bool]:
    """(status, body without heartbeats, whether heartbeats came first)."""
    headers = {"Authorization": f"Bearer {secret}"}
    if path.stream:
        headers["Accept"] = "text/event-stream"
    payload = {"model": "chat-model", "messages": [], "stream": path.stream} if path.method == "POST" else None
    with requests.request(path.method, base + path.url, json=payload, headers=headers, timeout=20) as r:
        raw = r.content
    heartbeat = b": keepalive\n\n"
    return r.status_code, raw.replace(heartbeat, b""), raw.startswith(heartbeat)


def _error_of(body: bytes) -> object:
    text = body.decode()
    if text.startswith("data: "):
        text = text.strip().rpartition("data: ")[2]
    return json.loads(text)["error"]
