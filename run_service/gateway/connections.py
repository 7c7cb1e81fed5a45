"""Keep-alive connections to one backend: made on demand, reused while idle, never waited for.

A burst beyond ``size`` opens extra connections instead of queueing behind long streams; only ``size`` idle
ones are kept. An idle connection the backend closed (an engine's keep-alive timeout) is noticed before
reuse and replaced, so the idle close does not reach a request as a backend that did not answer: an idle
connection must not be readable, and one that is (its end of stream, or stray bytes) is closed. That check
sees only a close that has already arrived, so connections idle for ``MAX_IDLE`` or longer are not reused
either: an engine closing one just as it is reused would otherwise fail a request that never ran.

Sockets come from the ``socket`` and ``ssl`` modules at call time, so they are gevent's in the
monkey-patched worker and the standard ones in native threads. The readability check uses the original
``select.poll`` with a zero timeout (never a wait, so never a gevent switch): gevent's patching replaces it.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable

from gevent.monkey import get_original

_poll: Callable[[], select.poll] = get_original("select", "poll")
_Address = tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes]
Track = Callable[[socket.socket], None]  # told of each socket before it connects; raises to refuse it
# An idle connection older than this is closed, not reused: below the 5 s keep-alive timeout of uvicorn, which
# vLLM and SGLang serve through. The readability check sees only a close that has already arrived; a
# connection reused just as the engine closes it would fail a request that never ran (as unanswered).
MAX_IDLE = 4.0


class Connections:
    """The connections to ``host``:``port`` (TLS with certificate verification when ``tls`` is given)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: ssl.SSLContext | None,
        connect_timeout: float,
        read_timeout: float,
        size: int,
        max_idle: float = MAX_IDLE,
    ) -> None:
        self.host, self.port, self._tls = host, port, tls
        self._connect_timeout, self._read_timeout, self._size = connect_timeout, read_timeout, size
        self._max_idle = max_idle
        self._idle: deque[tuple[socket.socket, float]] = deque()  # (connection, when it became idle)
        self._lock = threading.Lock()  # guards the idle count against another thread's give_back
        self._closed = False

    def idle(self) -> socket.socket | None:
        """A live idle connection (the most recently used), or None. Dead ones found on the way are closed."""
        while True:
            try:
                sock, since = self._idle.pop()
            except IndexError:
                return None
            if time.monotonic() - since < self._max_idle and _alive(sock):
                return sock
            sock.close()

    def connect(self, track: Track) -> socket.socket:
        """A new connection. Raises OSError (DNS, refused, connect timeout, TLS handshake) or what ``track`` raises."""
        errors: list[OSError] = []
        for family, kind, proto, _, address in socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM):
            sock = socket.socket(family, kind, proto)
            try:
                track(sock)  # before connecting: a hang-up shuts down a connection still being made
                return self._established(sock, address, track)
            except OSError as e:
                sock.close()
                errors.append(e)
            except BaseException:
                sock.close()
                raise
        raise errors[0] if errors else OSError(f"no address for {self.host}")

    def _established(self, sock: socket.socket, address: _Address, track: Track) -> socket.socket:
        sock.settimeout(self._connect_timeout)
        sock.connect(address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls is not None:  # the handshake is bounded by connect_timeout too
            sock = self._tls.wrap_socket(sock, server_hostname=self.host)  # takes over the plain socket
            try:
                track(sock)
            except BaseException:
                sock.close()
                raise
        sock.settimeout(self._read_timeout)
        return sock

    def give_back(self, sock: socket.socket, reusable: bool) -> None:
        """Keep ``sock`` for the next request if ``reusable`` and fewer than ``size`` are idle, else close it."""
        with self._lock:
            keep = reusable and not self._closed and len(self._idle) < self._size
            if keep:
                self._idle.append((sock, time.monotonic()))
        if not keep:
            sock.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = list(self._idle), deque()
        for sock, _ in idle:
            sock.close()


def _alive(sock: socket.socket) -> bool:
    """An idle connection is alive if nothing is readable on it (no end of stream, no stray bytes)."""
    if sock.fileno() < 0:
        return False
    poller = _poll()
    poller.register(sock.fileno(), select.POLLIN)
    return not poller.poll(0)
