"""Every request's access record and ``x-request-id``, kept at the WSGI layer around the Flask app.

Why a WSGI wrapper and not Flask's ``before_request``/``after_request`` hooks: it sees the same requests and
responses (every one Flask answers, its error handlers' included) and the status the server sends, without
the per-request cost of hook dispatch and of the ``g`` and ``request`` proxies (a tenth of the gateway's
own CPU per proxied request, measured with ``bench.gateway_floor``). Views find the request's ``Exchange``
in the environ under ``EXCHANGE``.

The access line is written when the server closes the response (``Relay.after`` for a relayed body, else a
closing wrapper), so its duration covers the whole body.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.wsgi import ClosingIterator

from gateway.access import Exchange
from gateway.headers import request_id
from gateway.relay import Relay

EXCHANGE = "spotgate.exchange"  # the environ key of the request's Exchange

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Start:
    """The server's ``start_response`` with the request id added; remembers the status code."""

    __slots__ = ("_rid", "_start_response", "status")

    def __init__(self, start_response: Callable[..., Any], rid: str) -> None:
        self._start_response = start_response
        self._rid = rid
        self.status = 0

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self.status = int(status[:3])
        headers = [(name, value) for name, value in headers if name.lower() != "x-request-id"]
        headers.append(("x-request-id", self._rid))
        if exc_info is None:
            return self._start_response(status, headers)
        return self._start_response(status, headers, exc_info)


class Exchanges:
    """Wraps the app: an ``Exchange`` per request, ``x-request-id`` on every response, ``finish`` at its close."""

    def __init__(self, app: WsgiApp, finish: Callable[[Exchange, int], None], monotonic: Callable[[], float]) -> None:
        self._app = app
        self._finish = finish
        self._monotonic = monotonic

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        rid = request_id(environ.get("HTTP_X_REQUEST_ID"))
        exchange = Exchange(rid, environ.get("REQUEST_METHOD", "GET").upper(), _path(environ), self._monotonic())
        environ[EXCHANGE] = exchange
        start = _Start(start_response, rid)
        body = self._app(environ, start)

        def done() -> None:
            self._finish(exchange, start.status)

        if isinstance(body, Relay):  # handed to the server as it is: it closes the Relay itself
            body.after(done)
            return body
        return ClosingIterator(body, done)


def _path(environ: dict[str, Any]) -> str:
    """The request's path as Flask's ``request.path`` spells it (werkzeug decodes PATH_INFO the same way)."""
    raw: str = environ.get("PATH_INFO") or ""
    return "/" + raw.encode("latin1").decode(errors="replace").lstrip("/")
