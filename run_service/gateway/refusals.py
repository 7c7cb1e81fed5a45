"""Requests gunicorn refuses before the app sees them, answered like every other gateway error.

Why: gunicorn's parser refuses a request line over ``limit_request_line`` (414), more than
``limit_request_fields`` header fields or one over ``limit_request_field_size`` (431) and malformed HTTP
(400) itself, with an HTML page and no access line; a head not received within ``header_timeout`` (408)
was a logged socket error with no answer at all. OpenAI SDKs read ``{"error": {...}}`` and decide on
retries from the status and ``x-should-retry``, so the worker (``gateway.worker``) answers these in the
OpenAI shape (``gateway.errors``), closes the connection, and writes one access line for each.

Nothing the client sent is echoed or logged: gunicorn's own messages quote the offending line or header,
which may hold a credential. ``refusal`` is pure: which answer an exception of gunicorn's parser gets.
"""

from __future__ import annotations

from http import HTTPStatus
from ssl import SSLError

from gunicorn.http import errors as http_errors

from gateway.errors import ApiError

_MALFORMED = "The request is not valid HTTP/1.1."


class HeadTimeoutError(Exception):
    """A request's head was not complete ``header_timeout`` after its first byte (``gateway.worker``).

    Not an ``OSError``: gunicorn logs those as socket errors with a traceback and answers nothing.
    """


# Checked in order (subclasses first): gunicorn exception -> status, machine code, message.
_TABLE: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], int, str, str], ...] = (
    (
        (http_errors.InvalidResponseHeader, http_errors.InvalidResponseHeaderName),
        500, "internal_error", "Internal gateway error.",
    ),
    (http_errors.LimitRequestLine, 414, "request_line_too_long", "The request line (method, path, query) is too long."),
    (http_errors.LimitRequestHeaders, 431, "request_headers_too_large",
     "The request has too many header fields, or one that is too large."),
    (http_errors.UnsupportedTransferCoding, 501, "unsupported_transfer_coding",
     "The request's Transfer-Encoding is not supported."),
    (http_errors.ExpectationFailed, 417, "expectation_failed", "The request's Expect header cannot be met."),
    (http_errors.ConfigurationProblem, 500, "internal_error", "Internal gateway error."),
    (HeadTimeoutError, 408, "request_timeout", "The request headers were not received in time."),
    ((http_errors.ParseException, SSLError), 400, "malformed_request", _MALFORMED),
)  # fmt: skip


def refusal(exc: BaseException) -> ApiError:
    """The answer to a request gunicorn could not take in because of ``exc`` (500 for anything unexpected)."""
    for kinds, status, code, message in _TABLE:
        if isinstance(exc, kinds):
            return _error(status, code, message)
    return _error(500, "internal_error", "Internal gateway error.")


def _error(status: int, code: str, message: str) -> ApiError:
    kind = "invalid_request_error" if status < 500 else "api_error"
    return ApiError(status, message, kind, code)


def response(error: ApiError, rid: str) -> bytes:
    """The whole HTTP/1.1 response for ``error``; the connection is closed after it."""
    body = error.body()
    headers = {**error.headers(), "Content-Length": str(len(body)), "Connection": "close", "x-request-id": rid}
    head = [f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
