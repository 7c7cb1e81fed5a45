"""Reading request bodies within bounds: per body, per key, per worker, and in time.

Why: a body is read only after the caller's key has been admitted (its rate token and concurrency slot are
taken from the headers), but what an admitted caller sends still has to be bounded, or one key can exhaust
the worker's memory. Four bounds apply:

- one body: ``max_body_bytes`` (413);
- all bodies of the worker: ``max_body_bytes_in_flight``, held from the first byte read until the request
  ends, because the body stays in memory while the request is held or relayed (503, ``Retry-After``); a
  JSON body's parsed form counts too (``hold_parsed``, sized by ``gateway.payload.parsed_size``), from
  before parsing until the request no longer holds the parsed object (the view gives it back once it has
  built the upstream request, which carries bytes);
- one key's bodies still being received: ``max_uploads_per_key`` at a time, and together at most half of
  the worker's budget (or one whole body if that is more), so a key that trickles its bodies slowly cannot
  hold many open nor reserve the budget every other caller needs (429);
- time: the whole body within ``body_timeout`` (408, and the connection is closed).

The timeout is applied as the client socket's timeout before each read, so it holds under gevent and under
werkzeug's threaded server alike.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
from collections.abc import Callable
from typing import Any

from gateway import errors
from gateway.errors import ApiError
from gateway.limits import Release

_READ = 64 * 1024


class BodyBudget:
    """The worker's byte budget for request bodies in flight, and per key the bodies being received (how many,
    and the bytes they reserved: at most ``max_receiving_per_key``)."""

    def __init__(self, max_bytes: int, max_uploads_per_key: int, max_receiving_per_key: int) -> None:
        self._max_bytes = max_bytes
        self._max_uploads = max_uploads_per_key
        self._max_receiving = max_receiving_per_key
        self._lock = threading.Lock()
        self._bytes = 0
        self._uploads: dict[str, int] = {}
        self._receiving: dict[str, int] = {}

    def reserve(self, size: int) -> bool:
        """Take ``size`` bytes of the budget; False (nothing taken) when they do not fit."""
        with self._lock:
            if self._bytes + size > self._max_bytes:
                return False
            self._bytes += size
            return True

    def reserve_upload(self, key: str, size: int) -> bool:
        """``reserve`` for a body ``key`` is sending. Raises ApiError 429 past the key's share of the budget."""
        with self._lock:
            receiving = self._receiving.get(key, 0) + size
            if receiving > self._max_receiving:
                raise errors.rate_limited("This key's request bodies already take its share of the gateway.", 1)
            if self._bytes + size > self._max_bytes:
                return False
            self._bytes += size
            self._receiving[key] = receiving
            return True

    def give_back(self, size: int) -> None:
        with self._lock:
            self._bytes = max(0, self._bytes - size)

    def start_upload(self, key: str) -> None:
        """Count a body of ``key`` being received. Raises ApiError 429 when the key has too many."""
        with self._lock:
            running = self._uploads.get(key, 0)
            if running >= self._max_uploads:
                raise errors.rate_limited(f"This key is already sending {running} request bodies.", 1)
            self._uploads[key] = running + 1

    def end_upload(self, key: str, reserved: int = 0) -> None:
        """A body of ``key`` is received (or failed); the ``reserved`` bytes it took stay held, not receiving."""
        with self._lock:
            receiving = self._receiving.get(key, 0) - reserved
            if receiving > 0:
                self._receiving[key] = receiving
            else:
                self._receiving.pop(key, None)
            left = self._uploads.get(key, 1) - 1
            if left > 0:
                self._uploads[key] = left
            else:
                self._uploads.pop(key, None)

    @property
    def bytes_in_flight(self) -> int:
        return self._bytes

    @property
    def max_bytes(self) -> int:
        return self._max_bytes


class BodyReader:
    """Reads one request's body for ``key``; ``on_release`` receives the callback that frees its bytes."""

    def __init__(self, budget: BodyBudget, *, limit: int, timeout: float, monotonic: Callable[[], float]) -> None:
        self._budget = budget
        self._limit = limit
        self._timeout = timeout
        self._monotonic = monotonic

    def read(self, environ: dict[str, Any], key: str, on_release: Callable[[Callable[[], None]], None]) -> bytes:
        """The whole body. Raises ApiError 413, 408, 429 or 503 (see the module docstring)."""
        declared = _content_length(environ)
        if declared is not None and declared > self._limit:
            raise errors.body_too_large(self._limit)
        held = [0]
        on_release(lambda: self._budget.give_back(held[0]))
        self._budget.start_upload(key)
        try:
            if declared is not None:
                self._reserve(declared, held, key)
            return self._receive(environ, declared, held, key)
        finally:
            self._budget.end_upload(key, held[0])

    def hold_parsed(self, size: int) -> Release:
        """Take ``size`` bytes of the budget for a body's parsed form; the ``Release`` frees them (once: a second
        call does nothing).

        Raises ApiError 503 when they do not fit now, 400 when they never could (more than the whole budget).
        """
        if size > self._budget.max_bytes:
            raise errors.bad_request("The body's JSON is too large to parse here.", code="json_too_large")
        if not self._budget.reserve(size):
            raise _busy()
        return Release(functools.partial(self._budget.give_back, size))

    def _reserve(self, size: int, held: list[int], key: str) -> None:
        if not self._budget.reserve_upload(key, size):
            raise _busy()
        held[0] += size

    def _receive(self, environ: dict[str, Any], declared: int | None, held: list[int], key: str) -> bytes:
        if declared is None and not environ.get("wsgi.input_terminated"):
            return b""  # chunked, and the server cannot tell where it ends: no body (as werkzeug decides)
        stream = environ["wsgi.input"]  # read raw: the server's own stream wrappers hide timeouts as 400s
        sock = client_socket(environ)
        previous = sock.gettimeout() if sock is not None else None
        deadline = self._monotonic() + self._timeout
        parts: list[bytes] = []
        size = 0
        try:
            while declared is None or size < declared:
                _set_timeout(sock, deadline - self._monotonic())
                chunk = stream.read(_READ if declared is None else min(_READ, declared - size))
                if not chunk:
                    break
                size += len(chunk)
                if size > self._limit:
                    raise errors.body_too_large(self._limit)
                if declared is None:
                    self._reserve(len(chunk), held, key)
                parts.append(chunk)
        except TimeoutError as e:
            _stop_reading(sock)
            raise ApiError(408, f"The request body did not arrive within {self._timeout:g} s.",
                           "invalid_request_error", "request_timeout") from e  # fmt: skip
        except OSError as e:
            raise errors.bad_request("The connection failed while the body was sent.", code="body_incomplete") from e
        finally:
            if sock is not None:
                sock.settimeout(previous)
        return b"".join(parts)


def _busy() -> ApiError:
    return ApiError(503, "The gateway is receiving too many request bodies; retry shortly.",
                    "service_unavailable", "busy", retry_after=1)  # fmt: skip


def _content_length(environ: dict[str, Any]) -> int | None:
    raw = environ.get("CONTENT_LENGTH")
    if not raw:
        return None if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked" else 0
    try:
        value = int(raw)
    except ValueError:
        raise errors.bad_request("Content-Length is not a number.", code="invalid_content_length") from None
    if value < 0:
        raise errors.bad_request("Content-Length is negative.", code="invalid_content_length")
    return value


def client_socket(environ: dict[str, Any]) -> socket.socket | None:
    """The connection's socket, as gunicorn or werkzeug's server expose it (None elsewhere)."""
    sock = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
    return sock if hasattr(sock, "settimeout") else None  # gevent's socket is not a stdlib subclass


def _set_timeout(sock: socket.socket | None, remaining: float) -> None:
    if remaining <= 0:
        raise TimeoutError
    if sock is not None:
        sock.settimeout(remaining)


def _stop_reading(sock: socket.socket | None) -> None:
    """After a timeout the rest of the body is unwanted: the server must not wait to drain it."""
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RD)
