"""A caller that hangs up while its non-streaming request waits: the backend is told, the slot comes back.

Why: a non-streaming request writes nothing to the caller until the backend answers, so a hang-up would go
unnoticed until then: the engine keeps generating for nobody (up to ``read_timeout``) and the key's
concurrency slot stays taken. ``watch`` hands the caller's socket to the process's one watcher (a thread,
a greenlet under gevent), which waits for any watched socket to become readable (from its next tick, at
most ``_POLL`` later: a request answered before that costs nothing more); a readable socket
whose peek returns nothing is a closed connection (a well-behaved HTTP/1.1 client sends nothing more
before its answer; if it pipelines bytes, watching stops).
On a hang-up, the upstream connection opened for this request is shut down (``Cancel``), which ends the
backend's request (engines abort a request whose connection closes), and the waiting request fails at once,
so its admission is released.

The upstream connections are found through a context variable set around the attempt (``current``): the
upstream client registers each socket it opens or reuses for the request with that ``Cancel``, before it
connects, so a hang-up also stops a connection still being made (for HTTPS, not its TLS handshake, which
runs until done or ``connect_timeout``; the request then stops before sending).
"""

from __future__ import annotations

import _socket
import contextvars
import os
import selectors
import socket
import threading
import time
from typing import Any

from gateway.upstream_response import shut

_current: contextvars.ContextVar[Cancel | None] = contextvars.ContextVar("gateway_cancel", default=None)
_POLL = 0.5  # seconds: the watcher's tick; a caller still in flight at a tick is watched from then on


class Cancel:
    """The upstream connections of one request, and whether its caller has gone."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: list[socket.socket] = []
        self._finished = False
        self.gone = threading.Event()

    def attach(self, connection: socket.socket) -> None:
        """Track ``connection``; refuse it (ConnectionAbortedError) if the caller is already gone."""
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
            shut(connection)


def current() -> Cancel | None:
    """The ``Cancel`` of the request being made in this context (inside ``watch``), or None."""
    return _current.get()


class _Watcher:
    """One helper per process watching every long-running caller connection through one selector.

    A helper per request would cost a thread (a greenlet) and a wait on every plain request; this one costs
    a plain request a dict insert and removal. A request is only *pending* at first; at each tick (every
    ``_POLL`` seconds) the helper moves every pending request into its selector (a descriptor ``dup`` and a
    registration), so the many requests answered within a tick never touch the selector, and a hang-up is
    seen at most about ``_POLL`` after the request began (at the first tick a request is in flight, the
    helper's next wait covers it), or at once for a request registered earlier.

    The selector is created in the worker, after gevent's monkey-patching: there
    ``selectors.DefaultSelector`` is gevent's (one libev watcher per registered socket, started at the next
    ``select`` call: the helper registers just before its own), elsewhere epoll. It used to be one
    ``select.select`` over a list of every watched socket, rebuilt every wait: O(n) per wait and per wake-up,
    so an overloaded worker (hundreds of requests in flight) spent most of its CPU watching and answered
    nothing, and with native threads ``select`` fails outright beyond descriptor 1023.
    It watches a duplicate of each caller's socket, never the server's own socket object: under gevent only
    one greenlet may wait on a socket, and the server reads the connection's next keep-alive request from it
    (a concurrent wait fails that read). A duplicate is unregistered before it is closed. Whatever the
    helper and a finishing request do to one entry happens under one lock, so a request that ends never
    leaves a duplicate behind, and a duplicate is made only of a socket whose request is still running
    (the server has not closed it).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._selector: selectors.BaseSelector | None = None
        self._pid = 0
        # keyed by id(cancel): the requests whose caller's socket is not in the selector yet, and those whose
        # duplicate is in it
        self._pending: dict[int, tuple[Any, Cancel]] = {}
        self._watched: dict[int, _socket.socket] = {}

    def add(self, client: Any, cancel: Cancel) -> None:
        """Watch the caller's connection for ``cancel`` from the next tick on, until ``remove(cancel)``."""
        with self._lock:
            if self._selector is None or self._pid != os.getpid():  # made lazily, in the worker after a fork
                self._pid, self._selector = os.getpid(), selectors.DefaultSelector()
                self._pending, self._watched = {}, {}
                threading.Thread(target=self._run, args=(self._selector,), name="gateway-hangup", daemon=True).start()
            self._pending[id(cancel)] = (client, cancel)

    def remove(self, cancel: Cancel) -> None:
        """Stop watching for ``cancel`` (the request is over); its duplicate, if it had one, is closed."""
        with self._lock:
            if self._pending.pop(id(cancel), None) is not None:
                return
            duplicate = self._watched.pop(id(cancel), None)
            if duplicate is None:  # judged already
                return
            self._unregister(duplicate)
        duplicate.close()

    def _unregister(self, duplicate: _socket.socket) -> None:
        try:
            if self._selector is not None:
                self._selector.unregister(duplicate)
        except (KeyError, ValueError):
            pass

    def _run(self, selector: selectors.BaseSelector) -> None:
        tick = time.monotonic() + _POLL
        while True:
            if (wait := tick - time.monotonic()) <= 0:
                self._promote(selector)
                tick, wait = time.monotonic() + _POLL, _POLL
            try:
                ready = selector.select(wait)
            except OSError:  # a descriptor closed under the wait: look again
                ready = []
            for key, _ in ready:
                self._judge(key.fileobj, key.data)  # type: ignore[arg-type]

    def _promote(self, selector: selectors.BaseSelector) -> None:
        """Move every pending request into the selector (a request that cannot be watched is dropped)."""
        with self._lock:
            pending, self._pending = self._pending, {}
            for key, (client, cancel) in pending.items():
                try:
                    duplicate = _socket.socket(fileno=os.dup(client.fileno()))  # plain: never waits in gevent
                except (OSError, ValueError):
                    continue
                try:
                    selector.register(duplicate, selectors.EVENT_READ, cancel)
                except (OSError, ValueError, KeyError):  # this caller goes unwatched; the watcher must not die
                    duplicate.close()
                    continue
                self._watched[key] = duplicate

    def _judge(self, duplicate: _socket.socket, cancel: Cancel) -> None:
        """Readable: closed (cancel) or pipelined bytes (nothing more to learn); either way, stop watching."""
        try:
            gone = duplicate.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return  # nothing after all: keep watching
        except OSError:
            gone = True
        with self._lock:
            if self._watched.pop(id(cancel), None) is None:  # the request ended meanwhile, and closed it
                return
            self._unregister(duplicate)
        duplicate.close()
        if gone:
            cancel.cancel()  # does nothing if the request has ended meanwhile (Cancel.finish)


_watcher = _Watcher()


class _Watching:
    """The context manager ``watch`` returns (a class: cheaper per request than a generator-based one)."""

    __slots__ = ("_cancel", "_client", "_token")

    def __init__(self, client: Any) -> None:
        self._client = client if client is not None and hasattr(client, "fileno") else None
        self._cancel = Cancel()
        self._token: contextvars.Token[Cancel | None] | None = None

    def __enter__(self) -> Cancel:
        self._token = _current.set(self._cancel)
        if self._client is not None:
            _watcher.add(self._client, self._cancel)
        return self._cancel

    def __exit__(self, *exc: object) -> None:
        self._cancel.finish()  # first: a hang-up judged from here on shuts nothing (the connections may serve others)
        if self._client is not None:
            _watcher.remove(self._cancel)
        if self._token is not None:
            _current.reset(self._token)


def watch(client: Any) -> _Watching:
    """Watch ``client`` (the caller's socket, or None: nothing to watch) while the body of the ``with`` runs;
    ``with watch(client) as cancel`` gives the request's ``Cancel``."""
    return _Watching(client)
