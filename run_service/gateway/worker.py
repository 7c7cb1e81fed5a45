"""gunicorn's gevent worker plus a header-read timeout (gunicorn has none of its own).

Why: gunicorn bounds the wait for a request's headers only by ``keepalive`` (620 s here, above the Google
front end's idle timeout), so a client that sends a request line and then trickles or withholds its headers
holds a connection for ten minutes. This worker starts a ``header_timeout`` clock at the first byte of each
request's head; when the head is not complete by then it answers 408 (the OpenAI error shape, one access
line, ``gateway.refusals``) and closes the connection. An idle keep-alive connection (no byte yet) still
waits up to ``keepalive``.

How: gunicorn enters ``timeout_ctx()`` around exactly the parse of each request's head, so that context
marks the header phase of the connection served by the current greenlet; the connection's socket is wrapped
so that, in that phase and after a first byte, every ``recv`` is bounded by what is left of the deadline.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gevent
from gevent.local import local
from gunicorn import glogging, util
from gunicorn.workers.ggevent import GeventWorker

from gateway import access, refusals
from gateway.headers import request_id


class _HeadTimed:
    """A client socket whose ``recv`` is bounded by a deadline during a request's head."""

    def __init__(self, sock: Any, limit: float) -> None:
        self._sock = sock
        self._limit = limit
        self._in_head = False
        self._deadline: float | None = None

    def start_head(self) -> None:
        self._in_head, self._deadline = True, None

    def end_head(self) -> None:
        self._in_head, self._deadline = False, None

    def recv(self, size: int, *flags: int) -> bytes:
        if not self._in_head or self._deadline is None:
            data: bytes = self._sock.recv(size, *flags)
            if self._in_head and data:
                self._deadline = time.monotonic() + self._limit  # the head has begun
            return data
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise refusals.HeadTimeoutError("request headers not received in time")
        previous = self._sock.gettimeout()
        self._sock.settimeout(left)
        try:
            chunk: bytes = self._sock.recv(size, *flags)
            return chunk
        except TimeoutError as e:
            raise refusals.HeadTimeoutError("request headers not received in time") from e
        finally:
            self._sock.settimeout(previous)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class HeaderTimeoutWorker(GeventWorker):  # type: ignore[misc]  # gunicorn ships no type information
    header_timeout = 15.0  # seconds; gunicorn.conf.py sets it from SPOTGATE_GATEWAY_HEADER_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connection = local()

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        timed = _HeadTimed(client, self.header_timeout)
        self._connection.socket = timed
        super().handle(listener, timed, addr)

    @contextmanager
    def timeout_ctx(self) -> Iterator[None]:
        timed: _HeadTimed | None = getattr(self._connection, "socket", None)
        if timed is not None:
            timed.start_head()
        try:
            with gevent.Timeout(self.cfg.keepalive, False):
                yield
        finally:
            if timed is not None:
                timed.end_head()

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """A request gunicorn refused (or failed before the app answered): the OpenAI error shape, not HTML.

        Replaces gunicorn's ``Worker.handle_error``, whose log lines and page quote what the client sent.
        """
        error = refusals.refusal(exc)
        req = req if req is not None else getattr(exc, "req", None)  # a bad header: the request line was read
        rid = request_id(None)  # the refused request's own x-request-id was never parsed
        if error.status >= 500:
            self.log.exception("error handling a request", extra={"request_id": rid})
        access.refused(rid, getattr(req, "method", None), getattr(req, "path", None), error.status, str(error.code))
        try:
            util.write_nonblock(client, refusals.response(error, rid))
        except Exception:  # the client is gone; gunicorn closes the socket next
            self.log.debug("failed to send an error response")


class Logger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's logger without gunicorn's access line: the gateway writes its own (``gateway/access.py``).

    gunicorn builds an access record (every request and response header, case-folded) for each request
    whenever a logging config is given, which ``gunicorn.conf.py``'s ``logconfig_dict`` is, and only then
    finds that nobody reads ``gunicorn.access``: 0.39 of 5.3 ms of profiled time per proxied request (cProfile
    of a worker at 200 req/s, before this class).
    """

    @property
    def access_log_enabled(self) -> bool:
        return False

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return None
