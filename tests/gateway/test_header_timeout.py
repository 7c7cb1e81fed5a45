"""A client that starts a request and withholds the rest of its headers gets a 408 and is disconnected after
the header timeout, while an idle keep-alive connection and a normal request are unaffected (production
gunicorn)."""

from __future__ import annotations

import json
import socket

import requests

from spotgate.adapters.sqlite_store import SqliteStore
from tests.gateway.gunicorn import free_port, gateway_env, running_gunicorn
from tests.gateway.stack import fleet_document


def answer_then_close(conn: socket.socket) -> bytes | None:
    """What the server sends before closing the connection; None if it is still open after our 10 s timeout."""
    reply = b""
    try:
        while chunk := conn.recv(65536):
            reply += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        return None
    return reply


def test_a_withheld_head_is_cut_after_the_header_timeout(tmp_path) -> None:
    store = SqliteStore(tmp_path / "gateway.db", poll_interval=0.05)
    env = gateway_env(tmp_path / "gateway.db", fleet_document(), free_port(), SPOTGATE_GATEWAY_HEADER_TIMEOUT="1s")
    log = tmp_path / "gateway.log"
    try:
        with log.open("wb") as stderr, running_gunicorn(env, stderr=stderr) as server:
            host, port = server.url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port)), timeout=10) as slow:
                slow.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\n")  # and nothing more
                with socket.create_connection((host, int(port)), timeout=10) as idle:
                    reply = answer_then_close(slow)
                    assert reply is not None  # closed, not left open
                    assert reply.startswith(b"HTTP/1.1 408 ")
                    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"
                    idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")  # idle > 1 s, then a request
                    assert idle.recv(1024).startswith(b"HTTP/1.1 200")
            assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        assert [e["code"] for e in lines if e.get("access") and e.get("refused_by")] == ["request_timeout"]
        assert "Traceback" not in log.read_text()  # gunicorn logged the timeout as a socket error
    finally:
        store.close()
