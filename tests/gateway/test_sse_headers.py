"""An SSE answer carries each header once (issue 13, finding 10: Cache-Control came twice).

vLLM sends ``Cache-Control: no-cache`` on its streams and the gateway adds its own SSE headers; the caller
must see one ``Cache-Control``, whatever case the backend wrote it in.
"""

from __future__ import annotations

import pytest
import requests

from tests.gateway.servers import Script, ScriptedServer
from tests.gateway.stack import a_key, a_route

SSE = b'data: {"id":"c1"}\n\ndata: [DONE]\n\n'


@pytest.mark.parametrize(
    "backend_headers",
    [
        pytest.param((("Cache-Control", "no-cache"),), id="backend-sends-cache-control"),
        pytest.param((("cache-control", "no-store"), ("X-Accel-Buffering", "no")), id="backend-lowercase-and-accel"),
        pytest.param((), id="backend-sends-none"),
    ],
)
def test_sse_headers_appear_once(store, make_gateway, hosts, backend_headers: tuple[tuple[str, str], ...]) -> None:
    script = Script(200, "text/event-stream", SSE, headers=backend_headers)
    with ScriptedServer(next(hosts), script) as backend:
        store.put_routes([a_route("chat", "chat-vm", backend.url)])
        secret, _ = a_key(store)
        payload = {"model": "chat-model", "messages": [], "stream": True}
        with requests.post(
            make_gateway().url + "/v1/chat/completions",
            json=payload,
            headers={"Authorization": f"Bearer {secret}", "Accept": "text/event-stream"},
            timeout=20,
        ) as response:
            raw = response.raw.headers

    assert response.status_code == 200
    assert raw.getlist("Cache-Control") == ["no-cache"]
    assert raw.getlist("X-Accel-Buffering") == ["no"]
