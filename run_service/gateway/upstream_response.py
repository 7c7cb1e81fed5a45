"""A backend's HTTP response, read off its socket by geventhttpclient's C parser (llhttp) as bytes arrive.

Why this and not http.client (through urllib3): its header parsing goes through the ``email`` package and
costs the worker more CPU per request than the rest of the client (docs/gateway.md, "Upstream HTTP client").
Only geventhttpclient's parser is used here, not its ``HTTPClient`` or ``ConnectionPool``: the client retries
idempotent requests on a closed connection (the proxy alone decides what is sent again), and the pool waits
at its size and uses gevent's locks and sockets, which do not cross native threads. The socket is the
standard library's (gevent's once the worker is monkey-patched), so the same code serves the gunicorn worker
and the tests' threads.

A body is handed on as it arrives: ``read_some`` returns whatever body bytes the next read from the socket
carried (a whole chunk of a chunked body, part of a Content-Length body, or of a body delimited by close).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable

from geventhttpclient.response import HTTPParseError, HTTPResponse

BLOCK = 64 * 1024  # bytes read from the socket at a time
Done = Callable[[socket.socket, bool], None]  # (socket, reusable): back to the pool, or closed


class ClosedError(EOFError):
    """The backend closed the connection before the response was complete."""


class UpstreamResponse(HTTPResponse):
    """One backend response: ``status`` and ``lines`` (header lines as sent) once ``read_head`` returned.

    ``done`` receives the socket exactly once: reusable when the whole response was read and both sides
    keep the connection, else to be closed. ``discard`` shuts the socket down first, which wakes a thread
    (or greenlet) blocked reading it.
    """

    def __init__(self, sock: socket.socket, method: str, done: Done) -> None:
        super().__init__(method)
        self.lines: list[tuple[str, str]] = []
        self._held = [sock]  # emptied (list.pop is atomic) by whoever hands the socket on first
        self._done = done
        self._final = False  # a final (non-1xx) response completed: bytes after it are not this response's
        self._spoiled = False
        self._reusable = True
        self._status = 0  # the first final response's code (the parser's own code is whatever it parsed last)

    @property
    def status(self) -> int:
        return self._status

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        lower = name.lower()
        return next((value for field, value in self.lines if field.lower() == lower), None)

    def read_head(self) -> None:
        """Read until a final status line and its headers. Raises OSError, HTTPParseError or ClosedError.

        The socket stays with the response even if the body came along: it goes back to the pool only once
        the body was read (``read_some``), after the request's hang-up watch ended, never while a hang-up
        could still shut it down under another request.
        """
        while not self._status:
            data = self._socket().recv(BLOCK)
            if not data:
                raise ClosedError("the backend closed the connection before a response")
            self.feed(data)

    def read_some(self) -> bytes:
        """The next body bytes as they arrive; b"" once the body is complete (the socket is handed on then).

        Raises OSError, HTTPParseError or ClosedError if the body is cut (the socket is closed then).
        """
        try:
            while not self._body_buffer and not self.message_complete:
                data = self._socket().recv(BLOCK)
                self.feed(data)  # b"" is the end of the stream: it completes a body delimited by close
                if not data and not self.message_complete:
                    raise ClosedError("the backend closed the connection before the end of the body")
        except (OSError, HTTPParseError, ClosedError):
            self.discard()
            raise
        chunk = bytes(self._body_buffer)
        self._body_buffer.clear()
        if not chunk:
            self.release()
        return chunk

    def forbid_reuse(self) -> None:
        """The connection is not to be pooled whatever the answer says (its request could not be sent whole)."""
        self._reusable = False

    def release(self) -> None:
        """Hand the socket on (back to its pool if the response was read whole and the connection lives)."""
        if self._held:
            with_socket = self._held.pop()
            self._done(
                with_socket, self._reusable and self.message_complete and not self._spoiled and not self.should_close()
            )

    def discard(self) -> None:
        """Drop the connection now (shut down, then closed), whatever was left to read."""
        try:
            sock = self._held.pop()
        except IndexError:
            return
        shut(sock)
        self._done(sock, False)

    def _socket(self) -> socket.socket:
        try:
            return self._held[0]
        except IndexError:
            raise ClosedError("the response was discarded") from None

    # parser callbacks (geventhttpclient.response.HTTPResponse keeps its own header index: not used here)
    def _on_headers_complete(self) -> int | bool | None:
        skip_body = super()._on_headers_complete()
        if not self._status and not self._final and self.get_code() >= 200:
            self._status = self.get_code()
        return skip_body

    def _flush_header(self) -> None:
        # headers_complete: a chunked body's trailer fields come through the same callbacks; they are not
        # response headers and are never relayed as such
        if self._current_header_field is not None and not self._final and not self.headers_complete:
            self.lines.append((self._current_header_field, self._current_header_value or ""))
        self._current_header_field = self._current_header_value = None

    def _on_message_begin(self) -> None:
        if self._final:
            self._spoiled = True  # a second response on one request: never reuse this connection
            return
        self.lines.clear()  # after an interim 1xx response, the final one follows
        super()._on_message_begin()

    def _on_message_complete(self) -> None:
        self._final = self._final or self.get_code() >= 200
        super()._on_message_complete()

    def _on_body(self, buf: bytearray) -> None:
        if not self._spoiled:
            self._body_buffer += buf


def shut(sock: socket.socket) -> None:
    """Shut ``sock`` down both ways: a thread blocked reading it wakes, and the backend sees the close."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
