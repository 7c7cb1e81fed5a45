"""HTTP to backends: one keep-alive connection pool per backend address, explicit timeouts, no retries.

urllib3 was chosen over httpx by measurement (docs/gateway.md): with the same gunicorn worker it added less
latency per request. Retries and redirects are disabled here because the proxy decides them itself: a
failure before the first response byte may be retried on another backend, anything after may not.

Failures are classified at this boundary by whether the request may have reached the engine:
``UnreachableError`` means the connection was never established (refused, connect timeout), so no request
byte left and it can safely go elsewhere; ``UnansweredError`` means the connection was up and the backend
closed or reset it before a response byte (urllib3's ``ProtocolError``): it may have read and run the
request, so it is not replayed by default; ``UpstreamTimeoutError`` means the backend accepted the request
but did not answer within the read timeout (it may be running). A pooled keep-alive connection the backend
closed while idle is detected by urllib3 before reuse and replaced by a new one, so an idle close does not
surface as ``UnansweredError``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator, Mapping
from datetime import timedelta

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.util import parse_url

from gateway.hangup import TrackedConnection, TrackedHTTPSConnection

CHUNK = 64 * 1024


class UnreachableError(Exception):
    """No connection to the backend was established: the request never left; it may be sent elsewhere."""


class UnansweredError(Exception):
    """The backend closed the connection after the request was (maybe partly) sent, before any answer."""


class UpstreamTimeoutError(Exception):
    """The backend accepted the request but did not answer in time."""


class StreamCutError(Exception):
    """The response body ended early (the backend died or timed out mid-response)."""


class Upstreams:
    """Connection pools keyed by backend base URL (``Route.address``)."""

    def __init__(self, *, connect_timeout: timedelta, read_timeout: timedelta, pool_size: int = 64) -> None:
        self._timeout = urllib3.Timeout(connect=connect_timeout.total_seconds(), read=read_timeout.total_seconds())
        self._pool_size = pool_size
        self._pools: dict[str, tuple[urllib3.HTTPConnectionPool, str]] = {}
        self._lock = threading.Lock()

    def _pool(self, address: str) -> tuple[urllib3.HTTPConnectionPool, str]:
        found = self._pools.get(address)
        if found is not None:
            return found
        with self._lock:
            if address not in self._pools:
                url = parse_url(address)
                # block=False: a burst beyond pool_size opens extra connections instead of queueing behind
                # long streams; only pool_size idle connections are kept.
                pool = urllib3.connection_from_url(
                    address, maxsize=self._pool_size, block=False, timeout=self._timeout, retries=False
                )
                # connections register with the request's hang-up watch, which can shut them down
                pool.ConnectionCls = TrackedHTTPSConnection if url.scheme == "https" else TrackedConnection
                self._pools[address] = (pool, (url.path or "").rstrip("/"))
            return self._pools[address]

    def open(
        self, address: str, method: str, target: str, headers: Mapping[str, str], body: bytes | None
    ) -> urllib3.HTTPResponse:
        """Send a request and return once the status line and headers arrived (the body is not read)."""
        pool, base = self._pool(address)
        try:
            response = pool.urlopen(
                method,
                base + target,
                body=body,
                headers=dict(headers),
                retries=False,
                redirect=False,
                preload_content=False,
                decode_content=False,
                assert_same_host=True,
            )
        except (NewConnectionError, ConnectTimeoutError) as e:  # raised only while connecting
            raise UnreachableError(str(e)) from e
        except ReadTimeoutError as e:
            raise UpstreamTimeoutError(str(e)) from e
        except HTTPError as e:  # ProtocolError and the rest: the connection was up when it failed
            raise UnansweredError(str(e)) from e
        if not isinstance(response, urllib3.HTTPResponse):  # urllib3 documents BaseHTTPResponse; it is this
            raise UnansweredError(f"unexpected response type {type(response).__name__}")
        return response

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool, _ in pools:
            pool.close()


def body_chunks(response: urllib3.HTTPResponse) -> Iterator[bytes]:
    """The response body as it arrives (each chunk as soon as the backend sent it). Raises StreamCutError."""
    try:
        if response.chunked and response.supports_chunked_reads():
            yield from response.read_chunked(decode_content=False)
        else:
            while chunk := response.read1(CHUNK):
                yield chunk
    except (ProtocolError, ReadTimeoutError, HTTPError, OSError) as e:
        raise StreamCutError(str(e)) from e


def discard(response: urllib3.HTTPResponse) -> None:
    """Close an upstream response early: the connection is dropped, never reused mid-body.

    The socket is shut down before it is closed: a plain close does not wake a thread blocked reading it
    (nor send the backend a FIN while that read is in progress), a shutdown does both.
    """
    sock = getattr(response.connection, "sock", None)
    try:
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        response.close()
    finally:
        response.release_conn()
