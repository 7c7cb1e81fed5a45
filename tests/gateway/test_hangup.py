"""A caller that hangs up on a non-streaming request before the answer: the backend's connection is closed
(so the engine stops generating) and the key's concurrency slot is free for the next request at once."""

from __future__ import annotations

import json
import socket

from tests.gateway.servers import Script, ScriptedServer
from tests.gateway.stack import a_key, a_route, wait_until

CHAT = {"model": "chat-model", "messages": [{"role": "user", "content": "hi"}]}
EMBED = {"model": "embed-model", "input": "hi"}


def send_and_hang_up(gateway_url: str, secret: str, payload: dict[str, object], backend: ScriptedServer) -> None:
    """Send the request, and close the connection once the backend has it (before it answers)."""
    host, port = gateway_url.removeprefix("http://").split(":")
    body = json.dumps(payload)
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {secret}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")  # fmt: skip
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head.encode() + body.encode())
        assert wait_until(lambda: bool(backend.recorder.requests))


def test_a_hang_up_reaches_the_backend_and_frees_the_slot(store, make_gateway, hosts) -> None:
    slow, fast = Script(delay=30), Script(body=b'{"object":"list","data":[]}')
    with ScriptedServer(next(hosts), slow) as chat, ScriptedServer(next(hosts), fast) as embed:
        store.put_routes([a_route("chat", "chat-vm", chat.url), a_route("embed", "embed-vm", embed.url)])
        secret, _ = a_key(store, max_concurrent=1)
        gateway = make_gateway()
        send_and_hang_up(gateway.url, secret, CHAT, chat)
        assert chat.recorder.disconnected.wait(10)  # the gateway closed its upstream request
        assert wait_until(lambda: _status(gateway.url, secret) == 200)  # the slot came back


def _status(url: str, secret: str) -> int:
    import requests

    headers = {"Authorization": f"Bearer {secret}"}
    return requests.post(f"{url}/v1/embeddings", json=EMBED, headers=headers, timeout=10).status_code


def test_a_hang_up_reaches_the_backend_under_gunicorn(tmp_path, hosts) -> None:
    from spotgate.adapters.sqlite_store import SqliteStore
    from tests.gateway.gunicorn import free_port, gateway_env, running_gunicorn
    from tests.gateway.stack import fleet_document

    store = SqliteStore(tmp_path / "gateway.db", poll_interval=0.05)
    slow, fast = Script(delay=30), Script(body=b'{"object":"list","data":[]}')
    try:
        with ScriptedServer(next(hosts), slow) as chat, ScriptedServer(next(hosts), fast) as embed:
            store.put_routes([a_route("chat", "chat-vm", chat.url), a_route("embed", "embed-vm", embed.url)])
            secret, _ = a_key(store, max_concurrent=1)
            with running_gunicorn(gateway_env(tmp_path / "gateway.db", fleet_document(), free_port())) as server:
                send_and_hang_up(server.url, secret, CHAT, chat)
                assert chat.recorder.disconnected.wait(10)
                assert wait_until(lambda: _status(server.url, secret) == 200)
    finally:
        store.close()
