"""A caller that hangs up while its non-streaming request waits: the backend is told, the slot comes back.

Why: a non-streaming request writes nothing to the caller until the backend answers, so a hang-up would go
unnoticed until then: the engine keeps generating for nobody (up to ``read_timeout``) and the key's
concurrency slot stays taken. ``watch`` registers the caller's socket with the process's one watcher (a
thread, a greenlet under gevent), which waits for any watched socket to become readable; a readable socket
whose peek returns nothing is a closed connection (a well-behaved HTTP/1.1 client sends nothing more
before its answer; if it pipelines bytes, watching stops).
On a hang-up, the upstream connection opened for this request is shut down (``Cancel``), which ends the
backend's request (engines abort a request whose connection closes), and the waiting request fails at once,
so its admission is released.

The upstream connection is found through a context variable set around the attempt: ``TrackedConnection``
(the connection class of every upstream pool) registers itself with the current ``Cancel`` when it sends.
"""

from __future__ import annotations

import _socket
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
        self._finished = False
        self.gone = threading.Event()

    def attach(self, connection: HTTPConnection) -> None:
        """Track ``connection``; refuse to send (ConnectionAbortedError) if the caller is already gone."""
        with self._lock:
            if self.gone.is_set():
                raise ConnectionAbortedError("the caller hung up")
            self._connections.append(connection)

    def finish(self) -> None:
        """The request is over: its connections may be back in the pool, serving others; never shut them."""
        with self._lock:
            self._finished = True
            self._connections.clear()

    def cancel(self) -> None:
        """The caller is gone: shut down every upstream connection this request opened."""
        with self._lock:
            if self._finished:
                return
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


class _Watcher:
    """One helper per process watching every registered caller connection (one ``select`` for all).

    A helper per request would cost a thread (a greenlet) and a ``select`` on every plain request; this one
    costs a descriptor ``dup`` and two dictionary updates. It watches a duplicate of each caller's socket,
    never the server's own socket object: under gevent only one greenlet may wait on a socket, and the server
    reads the connection's next keep-alive request from it (a concurrent wait fails that read). Duplicates are
    closed only by the watcher itself, between two ``select`` calls, so none is closed while it is waited on.
    New registrations are picked up within ``_POLL`` seconds.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: dict[int, tuple[_socket.socket, Cancel]] = {}
        self._closing: list[_socket.socket] = []
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def add(self, client: Any, cancel: Cancel) -> int | None:
        """Watch the caller's connection for ``cancel``; the token for ``remove`` (None: cannot be watched)."""
        try:
            duplicate = _socket.socket(fileno=os.dup(client.fileno()))  # a plain socket: never waits in gevent
        except (OSError, ValueError):
            return None
        token = id(cancel)
        with self._lock:
            self._watched[token] = (duplicate, cancel)
            if self._thread is None or self._pid != os.getpid():  # started lazily, in the worker after a fork
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="gateway-hangup", daemon=True)
                self._thread.start()
        self._wake.set()
        return token

    def remove(self, token: int) -> None:
        with self._lock:
            found = self._watched.pop(token, None)
            if found is not None:
                self._closing.append(found[0])

    def _run(self) -> None:
        while True:
            with self._lock:
                closing, self._closing = self._closing, []
                watched = dict(self._watched)
            for duplicate in closing:
                duplicate.close()
            if not watched:
                self._wake.wait(_POLL)
                self._wake.clear()
                continue
            try:
                readable, _, _ = select.select([d for d, _ in watched.values()], [], [], _POLL)
            except (OSError, ValueError):  # look again
                continue
            for token, (duplicate, cancel) in watched.items():
                if duplicate in readable:
                    self._judge(token, duplicate, cancel)

    def _judge(self, token: int, duplicate: _socket.socket, cancel: Cancel) -> None:
        """Readable: closed (cancel) or pipelined bytes (nothing more to learn); either way, stop watching."""
        try:
            gone = duplicate.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return  # nothing after all: keep watching
        except OSError:
            gone = True
        self.remove(token)
        if gone:
            cancel.cancel()  # does nothing if the request has ended meanwhile (Cancel.finish)


_watcher = _Watcher()


@contextlib.contextmanager
def watch(client: Any) -> Iterator[Cancel]:
    """Watch ``client`` (the caller's socket, or None: nothing to watch) while the body of the block runs."""
    cancel = Cancel()
    token = _current.set(cancel)
    watched = _watcher.add(client, cancel) if client is not None and hasattr(client, "fileno") else None
    try:
        yield cancel
    finally:
        if watched is not None:
            _watcher.remove(watched)
        cancel.finish()
        _current.reset(token)
