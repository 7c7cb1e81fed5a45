"""The upstream client in a gevent-patched process, as in the gunicorn worker: there ``socket``, ``ssl`` and
``select`` are gevent's, a blocked read is a waiting greenlet, and the idle-connection check must not use
gevent's ``poll`` (``connections`` takes the original). The servers run here, in native threads; the client
runs in a subprocess that patches everything before importing the gateway, then reports what it saw.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.gateway.raw_servers import RawServer, answer, unanswering_listener

ROOT = Path(__file__).resolve().parents[2]
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"

CLIENT = r"""
from gevent import monkey

monkey.patch_all()

import json, sys
from datetime import timedelta

import gevent

from gateway import hangup
from gateway.upstream import Upstreams, body_chunks, discard

closing, holding, unanswering = sys.argv[1:4]
client = Upstreams(connect_timeout=timedelta(seconds=60), read_timeout=timedelta(seconds=60))
seen = {}


def outcome(work):
    try:
        return repr(work())
    except Exception as e:
        return type(e).__name__


# an idle connection the backend closed is replaced
seen["first"] = outcome(lambda: b"".join(body_chunks(client.open(closing, "GET", "/", {}, None))))
sys.stdin.readline()  # the test has seen the backend close it
seen["after-idle-close"] = outcome(lambda: b"".join(body_chunks(client.open(closing, "GET", "/", {}, None))))

# discard wakes a greenlet blocked on the body
response = client.open(holding, "POST", "/v1/chat/completions", {}, b"{}")
reader = gevent.spawn(outcome, lambda: list(body_chunks(response)))
gevent.sleep(0.1)
discard(response)
seen["blocked-reader"] = reader.get(timeout=10)

# a hang-up (the watcher, another greenlet) ends a request still connecting
cancels = []


def attempt():
    with hangup.watch(None) as cancel:  # in the request's greenlet: the watch is found through its context
        cancels.append(cancel)
        return client.open(unanswering, "POST", "/v1/chat/completions", {}, b"{}")


trying = gevent.spawn(outcome, attempt)
gevent.sleep(0.1)
cancels[0].cancel()
seen["hang-up-while-connecting"] = trying.get(timeout=10)
print(json.dumps(seen))
"""


def test_the_client_under_gevent_replaces_closed_idle_connections_and_wakes_on_discard_and_hang_up(
    hosts: Iterator[str],
) -> None:
    def closes_when_idle(server: RawServer, conn: socket.socket) -> None:
        server.read_request(conn)
        conn.sendall(answer())
        conn.shutdown(socket.SHUT_RDWR)

    def holds(server: RawServer, conn: socket.socket) -> None:
        server.read_request(conn)
        conn.sendall(CHUNKED_HEAD)
        conn.recv(1)

    servers: list[RawServer] = []
    closing = RawServer(next(hosts), lambda conn, index: closes_when_idle(servers[0], conn))
    holding = RawServer(next(hosts), lambda conn, index: holds(servers[1], conn))
    servers += [closing, holding]
    with closing, holding, unanswering_listener(next(hosts)) as unanswering:
        argv = [sys.executable, "-c", CLIENT, closing.url, holding.url, unanswering]
        with subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as client:
            assert client.stdin is not None
            try:
                assert closing.finished.wait(20)
                client.stdin.write("go\n")
                client.stdin.flush()
                out, _ = client.communicate(timeout=60)
            finally:
                client.kill()
        assert holding.finished.wait(10)  # the discarded stream's backend saw the close
    assert json.loads(out) == {
        "first": "b'{}'",
        "after-idle-close": "b'{}'",
        "blocked-reader": "StreamCutError",
        "hang-up-while-connecting": "UnansweredError",
    }
    assert closing.accepted == 2
