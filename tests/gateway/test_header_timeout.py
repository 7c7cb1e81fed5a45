"""A client that starts a request and withholds the rest of its headers is disconnected after the header
timeout, while an idle keep-alive connection and a normal request are unaffected (production gunicorn)."""

from __future__ import annotations

import socket

import requests

from spotgate.adapters.sqlite_store import SqliteStore
from tests.gateway.gunicorn import free_port, gateway_env, running_gunicorn
from tests.gateway.stack import fleet_document


def closed_by_server(conn: socket.socket) -> bool:
    """True if the server closes the connection before our 10 s read timeout."""
    try:
        return conn.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_a_withheld_head_is_cut_after_the_header_timeout(tmp_path) -> None:
    store = SqliteStore(tmp_path / "gateway.db", poll_interval=0.05)
    env = gateway_env(tmp_path / "gateway.db", fleet_document(), free_port(), SPOTGATE_GATEWAY_HEADER_TIMEOUT="1s")
    try:
        with running_gunicorn(env) as server:
            host, port = server.url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port)), timeout=10) as slow:
                slow.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\n")  # and nothing more
                with socket.create_connection((host, int(port)), timeout=10) as idle:
                    assert closed_by_server(slow)
                    idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")  # idle > 1 s, then a request
                    assert idle.recv(1024).startswith(b"HTTP/1.1 200")
            assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
    finally:
        store.close()
