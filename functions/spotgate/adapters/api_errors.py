"""Google API errors, translated once for every adapter into the spotgate error tree.

google.api_core raises one exception class per HTTP status, but one status means several things on GCE: a
``403`` is a missing permission, a rate limit (``rateLimitExceeded``) or an exhausted quota
(``quotaExceeded``); a ``400`` is our mistake or a VM still STOPPING (``resourceNotReady``). The difference
is only in the machine-readable ``error.errors[].reason`` of GCE's error body (``from_http_response`` keeps
it in ``exception.errors``), so the reason decides first and the status only when no reason is known.
Message text is never read: it is for people and changes without notice.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from google.api_core import exceptions as gexc

from spotgate.errors import (
    ConflictError,
    NotFoundError,
    NotReadyError,
    PermanentError,
    PermissionDeniedError,
    QuotaError,
    RateLimitError,
    SpotgateError,
    UnavailableError,
)

# GCE's documented ``reason`` values (https://cloud.google.com/compute/docs/api/errors) with their class.
_REASONS: dict[str, type[SpotgateError]] = {
    "rateLimitExceeded": RateLimitError,
    "userRateLimitExceeded": RateLimitError,
    "RATE_LIMIT_EXCEEDED": RateLimitError,  # google.rpc.ErrorInfo reason (Cloud Run, other JSON/gRPC APIs)
    "quotaExceeded": QuotaError,
    "resourceNotReady": NotReadyError,
    "resourceInUseByAnotherResource": ConflictError,
    "conditionNotMet": ConflictError,
    "notFound": NotFoundError,
    "backendError": UnavailableError,
    "internalError": UnavailableError,
}

# With no known reason, the HTTP status class decides.
_STATUSES: tuple[tuple[type[Exception], type[SpotgateError]], ...] = (
    (gexc.NotFound, NotFoundError),
    (gexc.TooManyRequests, RateLimitError),
    (gexc.Forbidden, PermissionDeniedError),
    (gexc.Unauthorized, PermissionDeniedError),
    (gexc.Conflict, ConflictError),
    (gexc.PreconditionFailed, ConflictError),
    (gexc.ClientError, PermanentError),
)


@contextmanager
def translated(doing: str) -> Iterator[None]:
    """Turn google.api_core errors raised inside into spotgate errors that say what we were doing."""
    try:
        yield
    except SpotgateError:
        raise
    except Exception as e:
        raise translate_api_error(doing, e) from e


def translate_api_error(doing: str, error: Exception) -> SpotgateError:
    """Map a google.api_core / transport exception to the spotgate error tree, by reason code first."""
    text = f"{doing}: {error}"
    for reason in error_reasons(error):
        if reason in _REASONS:
            return _REASONS[reason](text)
    for vendor, ours in _STATUSES:
        if isinstance(error, vendor):
            return ours(text)
    return UnavailableError(text)


def error_reasons(error: Exception) -> list[str]:
    """The ``reason`` of every entry of ``error.errors`` (GCE's JSON error body), then the ErrorInfo reason."""
    if not isinstance(error, gexc.GoogleAPICallError):
        return []
    reasons = [str(e.get("reason", "")) for e in error.errors if isinstance(e, dict)]
    if error.reason:
        reasons.append(error.reason)
    return [r for r in reasons if r]
