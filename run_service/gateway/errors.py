"""Every error the gateway answers with, in the OpenAI error shape SDKs understand.

Why one module: OpenAI SDKs decide whether to retry from the status code, ``Retry-After`` and
``x-should-retry``, and they raise their typed exceptions from ``{"error": {"message", "type", "param",
"code"}}``. Keeping every refusal here keeps those three consistent, so a client never retries a request
that cannot succeed and never gives up on one that can.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

# Statuses where the same request can never succeed: tell SDKs not to retry (they would for some, e.g. 409,
# and for every 5xx, 501 included). 414, 417, 431 and 501 come from gunicorn's parser (``gateway.refusals``).
_FINAL = frozenset({400, 401, 403, 404, 405, 413, 414, 415, 417, 422, 431, 501})


@dataclass(eq=False)  # not frozen: Python sets __traceback__ and __context__ on exceptions
class ApiError(Exception):
    """A refusal with its HTTP status and OpenAI error fields; raise it anywhere in request handling."""

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    retry_after: int | None = None
    allow: str | None = None  # the ``Allow`` header of a 405

    def body(self) -> bytes:
        """The JSON error document."""
        error = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        return json.dumps({"error": error}, separators=(",", ":")).encode()

    def headers(self) -> dict[str, str]:
        """``Retry-After`` when waiting helps, ``x-should-retry: false`` when nothing will."""
        headers = {"Content-Type": "application/json"}
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        if self.allow is not None:
            headers["Allow"] = self.allow
        if self.status in _FINAL:
            headers["x-should-retry"] = "false"
        return headers

    def sse_event(self) -> bytes:
        """The error as a final SSE event: SDKs raise ``APIError`` on a ``data:`` event with ``error``."""
        return b"data: " + self.body() + b"\n\n"


def invalid_api_key(message: str = "Invalid or missing credentials.") -> ApiError:
    return ApiError(401, message, "invalid_request_error", "invalid_api_key")


def permission_denied(message: str) -> ApiError:
    return ApiError(403, message, "permission_denied", "permission_denied")


def rate_limited(message: str, retry_after: int) -> ApiError:
    return ApiError(429, message, "rate_limit_exceeded", "rate_limit_exceeded", retry_after=retry_after)


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, "invalid_request_error", code, param)


def model_not_found(model: str) -> ApiError:
    return ApiError(404, f"The model {model!r} does not exist.", "invalid_request_error", "model_not_found", "model")


def not_found(message: str = "Unknown path.") -> ApiError:
    return ApiError(404, message, "invalid_request_error", "not_found")


def method_not_allowed(allowed: Iterable[str]) -> ApiError:
    methods = ", ".join(allowed)
    return ApiError(405, f"Method not allowed here; allowed: {methods}.", "invalid_request_error",
                    "method_not_allowed", allow=methods)  # fmt: skip


def body_too_large(limit: int) -> ApiError:
    return ApiError(413, f"The request body exceeds {limit} bytes.", "invalid_request_error", "request_too_large")


def no_backend(pool: str, retry_after: int) -> ApiError:
    message = f"No backend of pool {pool!r} is ready; it is starting, retry shortly."
    return ApiError(503, message, "service_unavailable", "no_backend_ready", retry_after=retry_after)


def bad_gateway(message: str) -> ApiError:
    return ApiError(502, message, "api_error", "bad_gateway")


def gateway_timeout(message: str) -> ApiError:
    return ApiError(504, message, "api_error", "upstream_timeout")


def stream_interrupted(message: str) -> ApiError:
    return ApiError(502, message, "api_error", "stream_interrupted")


def client_gone() -> ApiError:
    """The caller closed the connection before the answer (nginx's 499; only the access line sees it)."""
    return ApiError(499, "The client closed the connection.", "invalid_request_error", "client_closed_request")
