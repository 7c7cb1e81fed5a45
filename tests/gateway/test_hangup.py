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


def test_a_hang_up_is_seen_among_more_watched_callers_than_select_can_take() -> None:
    """The watcher waits on a selector (gevent's under gunicorn, epoll elsewhere), not ``select.select``: that
    one rebuilt its list of every watched socket on each wait (an overloaded worker spent its CPU watching)
    and cannot take a descriptor above 1023 at all, so a hang-up among many callers went unseen."""
    from contextlib import ExitStack

    from gateway.hangup import watch

    with ExitStack() as stack:
        pairs = [socket.socketpair() for _ in range(550)]  # more than 1,024 descriptors
        for ours, theirs in pairs:
            stack.callback(ours.close)
            stack.callback(theirs.close)
        cancels = [stack.enter_context(watch(ours)) for ours, _ in pairs]
        assert max(ours.fileno() for ours, _ in pairs) > 1024
        pairs[-1][1].close()  # the last caller hangs up
        assert cancels[-1].gone.wait(10)
        assert not any(cancel.gone.is_set() for cancel in cancels[:-1])


def test_a_caller_watched_past_the_watchers_tick_leaves_no_descriptor_behind() -> None:
    """A request still running at the watcher's tick has its caller's socket duplicated into the selector
    (a request answered before then never has); when the request ends, the duplicate is closed with it."""
    import os
    from contextlib import ExitStack

    from gateway.hangup import watch

    def descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    with ExitStack() as stack:
        pairs = [socket.socketpair() for _ in range(20)]
        for ours, theirs in pairs:
            stack.callback(ours.close)
            stack.callback(theirs.close)
        with watch(pairs[0][0]):  # the watcher and its selector exist before counting
            pass
        before = descriptors()
        with ExitStack() as watching:
            for ours, _ in pairs:
                watching.enter_context(watch(ours))
            assert wait_until(lambda: descriptors() >= before + len(pairs))  # watched: one duplicate each
        assert wait_until(lambda: descriptors() == before)
