"""HTTP to backends: one keep-alive connection pool per backend address, explicit timeouts, no retries.

The request is written here and the response read by geventhttpclient's C parser (``upstream_response``),
chosen over urllib3 by measurement (docs/gateway.md, "Upstream HTTP client"). Nothing is retried or
redirected here: the proxy decides, since a failure before the first response byte may be retried on
another backend and anything after may not. Headers go as given: only ``Host``, ``Content-Length`` and,
when the caller named none, ``Accept-Encoding: identity`` (the body is relayed as the backend encodes it,
so a caller that did not say it accepts a coding gets none, as through urllib3 before) are added.

Failures are classified at this boundary by whether the request may have reached the engine:
``UnreachableError`` means the connection was never established (DNS, refused, connect timeout, TLS
handshake), so no request byte left and it can safely go elsewhere; ``UnansweredError`` means the connection
was up and the backend closed or reset it before a complete response head: it may have read and run the
request, so it is not replayed by default; ``UpstreamTimeoutError`` means the backend accepted the request
but did not answer within the read timeout (it may be running); ``StreamCutError`` means the body ended
early. A pooled keep-alive connection the backend closed while idle is noticed before reuse and replaced,
and one idle long enough that the engine may be closing it is not reused (``connections``), so an idle close
does not surface as ``UnansweredError``. A backend that answers before reading the whole request and closes
(a 413 on a large upload) gives its answer, not ``UnansweredError``.

A request made while its caller is watched for a hang-up (``hangup.watch``) registers each socket it opens
or reuses, before connecting, with the request's ``Cancel``, which shuts them down if the caller goes.
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from geventhttpclient.response import HTTPParseError

from gateway import hangup
from gateway.connections import MAX_IDLE, Connections
from gateway.upstream_response import ClosedError, UpstreamResponse

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # a method or header name (RFC 9110 §5.6.2)
_NOT_IN_TARGET = re.compile(r"[\x00-\x20\x7f]")
_NOT_IN_VALUE = re.compile(r"[\r\n\x00]")
_EXPECTING_BODY = frozenset({"POST", "PUT", "PATCH"})  # sent with Content-Length: 0 when there is no body
_ONE_WRITE = 64 * 1024  # a body up to this size is sent in the same write as the head


class UnreachableError(Exception):
    """No connection to the backend was established: the request never left; it may be sent elsewhere."""


class UnansweredError(Exception):
    """The backend closed the connection after the request was (maybe partly) sent, before any answer."""


class UpstreamTimeoutError(Exception):
    """The backend accepted the request but did not answer in time."""


class StreamCutError(Exception):
    """The response body ended early (the backend died or timed out mid-response)."""


@dataclass(frozen=True, slots=True)
class _Backend:
    connections: Connections
    base: str  # the address's path, prefixed to every target
    host: str  # the Host header


class Upstreams:
    """Connection pools keyed by backend base URL (``Route.address``)."""

    def __init__(
        self, *, connect_timeout: timedelta, read_timeout: timedelta, pool_size: int = 64, max_idle: float = MAX_IDLE
    ) -> None:
        self._connect_timeout = connect_timeout.total_seconds()
        self._read_timeout = read_timeout.total_seconds()
        self._pool_size = pool_size
        self._max_idle = max_idle  # seconds an idle connection may be reused for (connections.MAX_IDLE)
        self._backends: dict[str, _Backend] = {}
        self._lock = threading.Lock()

    def _backend(self, address: str) -> _Backend:
        found = self._backends.get(address)
        if found is not None:
            return found
        with self._lock:
            if address not in self._backends:
                self._backends[address] = self._new_backend(address)
            return self._backends[address]

    def _new_backend(self, address: str) -> _Backend:
        url = urlsplit(address)
        https = url.scheme == "https"
        host, default = url.hostname or "", 443 if https else 80
        port = url.port or default
        named = f"[{host}]" if ":" in host else host
        connections = Connections(
            host,
            port,
            tls=ssl.create_default_context() if https else None,  # verifies the certificate and the host name
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
            size=self._pool_size,
            max_idle=self._max_idle,
        )
        return _Backend(connections, url.path.rstrip("/"), named if port == default else f"{named}:{port}")

    def open(
        self, address: str, method: str, target: str, headers: Mapping[str, str], body: bytes | None
    ) -> UpstreamResponse:
        """Send a request and return once the status line and headers arrived (the body is not read).

        ``target`` (path and query) is sent exactly as given after the address's own path. Raises
        UnreachableError, UnansweredError or UpstreamTimeoutError (module docstring); ValueError for a method,
        target or header that cannot be written on the wire.
        """
        backend = self._backend(address)
        head = _head(method, backend.base + target, backend.host, headers, body)
        cancel = hangup.current()
        sock = _socket(backend.connections, cancel)
        response = UpstreamResponse(sock, method, backend.connections.give_back)
        try:
            _send_then_read(sock, head, body, response)
        except TimeoutError as e:
            response.discard()
            raise UpstreamTimeoutError(f"no answer within {self._read_timeout:g} s") from e
        except (OSError, HTTPParseError, ClosedError) as e:
            response.discard()
            raise UnansweredError(str(e) or type(e).__name__) from e
        return response

    def close(self) -> None:
        with self._lock:
            backends, self._backends = list(self._backends.values()), {}
        for backend in backends:
            backend.connections.close()


def _socket(connections: Connections, cancel: hangup.Cancel | None) -> socket.socket:
    """A live idle connection or a new one, registered with ``cancel``. Raises UnreachableError, or
    UnansweredError if the caller has hung up (nothing was sent; it is not the backend's failure)."""
    track = _untracked if cancel is None else cancel.attach
    try:
        sock = connections.idle()
        if sock is None:
            sock = connections.connect(track)
        else:
            try:
                track(sock)
            except BaseException:
                connections.give_back(sock, True)
                raise
    except OSError as e:
        if cancel is not None and cancel.gone.is_set():
            raise UnansweredError("the caller hung up before the request was sent") from e
        raise UnreachableError(str(e) or type(e).__name__) from e
    if cancel is not None and cancel.gone.is_set():  # gone before connect(): its shutdown found nothing to end
        connections.give_back(sock, False)
        raise UnansweredError("the caller hung up before the request was sent")
    return sock


def _untracked(sock: socket.socket) -> None:
    return None


def _head(method: str, target: str, host: str, headers: Mapping[str, str], body: bytes | None) -> bytes:
    """The request line and headers, as written on the wire. Raises ValueError for what cannot be written."""
    if not _TOKEN.fullmatch(method) or not target or _NOT_IN_TARGET.search(target):
        raise ValueError(f"cannot send {method!r} {target!r}")
    lines = [f"{method} {target} HTTP/1.1"]
    named = set()
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or _NOT_IN_VALUE.search(value):
            raise ValueError(f"cannot send header {name!r}")
        named.add(name.lower())
        lines.append(f"{name}: {value}")
    if "host" not in named:
        lines.insert(1, f"Host: {host}")
    if "accept-encoding" not in named:
        lines.append("Accept-Encoding: identity")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    elif method in _EXPECTING_BODY:
        lines.append("Content-Length: 0")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


def _send_then_read(sock: socket.socket, head: bytes, body: bytes | None, response: UpstreamResponse) -> None:
    """Send the request and read the answer's head. A backend may answer before it has read the whole body
    (a 401, 404 or 413 on the headers alone) and close: the send then fails with a broken pipe or a reset, but
    its answer is on the socket, and it is the answer (as urllib3 and browsers do), not a backend that gave
    none. Only if no answer can be read is the send's failure raised."""
    try:
        _send(sock, head, body)
    except (BrokenPipeError, ConnectionResetError) as sent:
        response.forbid_reuse()
        try:
            response.read_head()
        except (OSError, HTTPParseError, ClosedError):
            raise sent from None
        return
    response.read_head()


def _send(sock: socket.socket, head: bytes, body: bytes | None) -> None:
    if body and len(body) > _ONE_WRITE:
        sock.sendall(head)
        sock.sendall(body)
    else:
        sock.sendall(head + body if body else head)


def body_chunks(response: UpstreamResponse) -> Iterator[bytes]:
    """The response body as it arrives (each chunk as soon as the backend sent it). Raises StreamCutError.

    Once the body is complete the connection goes back to its pool.
    """
    try:
        while chunk := response.read_some():
            yield chunk
    except (OSError, HTTPParseError, ClosedError) as e:
        raise StreamCutError(str(e) or type(e).__name__) from e


def discard(response: UpstreamResponse) -> None:
    """Close an upstream response early: the connection is dropped, never reused mid-body.

    The socket is shut down before it is closed: a plain close does not wake a thread blocked reading it
    (nor send the backend a FIN while that read is in progress), a shutdown does both. Nothing happens if
    the response was read whole (its connection is back in the pool, maybe serving another request).
    """
    response.discard()
