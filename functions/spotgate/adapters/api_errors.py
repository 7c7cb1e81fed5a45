"""Google API errors, translated once for every adapter into the spotgate error tree.

google.api_core raises one exception class per HTTP status; callers of spotgate's ports only ever see
``spotgate.errors`` (permanent vs transient), with a message saying what was being done.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from google.api_core import exceptions as gexc

from spotgate.errors import (
    ConflictError,
    NotFoundError,
    PermanentError,
    PermissionDeniedError,
    QuotaError,
    SpotgateError,
    UnavailableError,
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
    """Map a google.api_core / transport exception to the spotgate error tree."""
    text = f"{doing}: {error}"
    if isinstance(error, gexc.NotFound):
        return NotFoundError(text)
    if isinstance(error, gexc.Forbidden | gexc.Unauthorized):
        return PermissionDeniedError(text)
    if isinstance(error, gexc.TooManyRequests):
        return QuotaError(text)
    if isinstance(error, gexc.Conflict | gexc.PreconditionFailed | gexc.BadRequest) and "NOT_READY" in str(error):
        return ConflictError(text)
    if isinstance(error, gexc.ClientError):
        return PermanentError(text)
    return UnavailableError(text)
