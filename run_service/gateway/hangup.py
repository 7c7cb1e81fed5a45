"""A caller that hangs up while its non-streaming request waits: the backend is told, the slot comes back.

Why: a non-streaming request writes nothing to the caller until the backend answers, so a hang-up would go
unnoticed until then: the engine keeps generating for nobody (up to ``read_timeout``) and the key's
concurrency slot stays taken. ``watch`` starts a helper (a greenlet under gevent) that waits for the
caller's socket to become readable; a readable socket whose peek returns nothing is a closed connection (a
well-behaved HTTP/1.1 client sends nothing more before its answer; if it pipelines bytes, watching stops).
On a hang-up, the upstream connection opened for this request is shut down (``Cancel``), which ends the
backend's request (engines abort a request whose connection closes), and the waiting request fails at once,
so its admission is released.

The upstream connection is found through a context variable set around the attempt: ``TrackedConnection``
(the connection class of every upstream pool) registers itself with the current ``Cancel`` when it sends.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import select
import socket
import threading
from collections.abc import Iterator
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection

_current: contextvars.ContextVar[Cancel | None] = contextvars.ContextVar("gateway_cancel", default=None)
_POLL = 0.5  # seconds between checks that watching should stop


class Cancel:
    """The upstream connections of one request, and whether its caller has gone."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: list[HTTPConnection] = []
        self.gone = threading.Event()

    def attach(self, connection: HTTPConnection) -> None:
        """Track ``connection``; refuse to send (ConnectionAbortedError) if the caller is already gone."""
        with self._lock:
            if self.gone.is_set():
                raise ConnectionAbortedError("the caller hung up")
            self._connections.append(connection)

    def cancel(self) -> None:
        """The caller is gone: shut down every upstream connection this request opened."""
        with self._lock:
            self.gone.set()
            connections = list(self._connections)
        for connection in connections:
            _shut(connection)


def _shut(connection: HTTPConnection) -> None:
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class _Tracked:
    _cancel: Cancel | None = None

    def request(self, *args: Any, **kwargs: Any) -> None:
        self._cancel = _current.get()
        if self._cancel is not None:
            self._cancel.attach(self)  # type: ignore[arg-type]
        super().request(*args, **kwargs)  # type: ignore[misc]

    def getresponse(self) -> Any:
        # A hang-up noticed while the connection was still being made found no socket to shut: do it now,
        # before blocking on the answer (a later one finds the socket).
        if self._cancel is not None and self._cancel.gone.is_set():
            _shut(self)  # type: ignore[arg-type]
        return super().getresponse()  # type: ignore[misc]


class TrackedConnection(_Tracked, HTTPConnection):
    """An upstream HTTP connection that registers with the request's ``Cancel`` as it sends."""


class TrackedHTTPSConnection(_Tracked, HTTPSConnection):
    """The same for HTTPS (overflow services)."""


@contextlib.contextmanager
def watch(client: Any) -> Iterator[Cancel]:
    """Watch ``client`` (the caller's socket, or None: nothing to watch) while the body of the block runs."""
    cancel = Cancel()
    token = _current.set(cancel)
    done = threading.Event()
    watched = _duplicate(client)
    if watched is not None:
        threading.Thread(target=_watch, args=(watched, cancel, done), name="gateway-hangup", daemon=True).start()
    try:
        yield cancel
    finally:
        done.set()
        _current.reset(token)


def _duplicate(client: Any) -> socket.socket | None:
    """A socket of its own on the caller's connection (a dup of its descriptor), or None.

    The watcher must never wait on the server's own socket object: under gevent only one greenlet may wait on
    a socket, and the watcher can still be waiting when the server reads the connection's next request
    (keep-alive), which then fails (ConcurrentObjectUseError, a 500 before any byte). A duplicate descriptor
    has its own waiter and sees the same connection, so peeking on it shows what the caller did.
    """
    if client is None or not hasattr(client, "fileno"):
        return None
    try:
        return socket.socket(fileno=os.dup(client.fileno()))
    except (OSError, ValueError):
        return None


def _watch(client: socket.socket, cancel: Cancel, done: threading.Event) -> None:
    try:
        while not done.is_set():
            try:
                readable, _, _ = select.select([client], [], [], _POLL)
                if not readable:
                    continue
                if client.recv(1, socket.MSG_PEEK) == b"" and not done.is_set():
                    cancel.cancel()
            except (OSError, ValueError):  # closed under us: the request is over or the caller is gone
                if not done.is_set():
                    cancel.cancel()
            return
    finally:
        client.close()
