"""spotgate's one exception tree.

Adapters translate vendor errors (google.api_core, sqlite3, grpc, HTTP) into these classes with
``raise ... from e``, so services decide on retry vs. ack without knowing which cloud answered.

    SpotgateError
    ├── ConfigError                 invalid fleet configuration or settings (permanent)
    ├── PermanentError              retrying the same call cannot help
    │   ├── NotFoundError           the instance / service / document does not exist
    │   ├── InvalidEventError       a payload we cannot parse (acked, never redelivered)
    │   └── PermissionDeniedError   the caller's identity lacks a permission
    └── TransientError              the same call may succeed later
        ├── CapacityError           SPOT stockout in a zone (carries zones_available hints)
        ├── QuotaError              a regional GPU / CPU quota is exhausted (``403 quotaExceeded``, ``QUOTA_EXCEEDED``)
        ├── RateLimitError          the API's request rate limit was hit (``403 rateLimitExceeded``, 429): back off
        ├── NotReadyError           the resource is mid-transition (``400 resourceNotReady``): retry on a later round
        ├── ConflictError           a concurrent writer won (lease held, generation moved)
        └── UnavailableError        the store, API or network did not answer

Classification reads GCE's machine-readable reason codes (``error.errors[].reason`` of a synchronous error,
``error.errors[].code`` of a failed operation), never the message text.
"""

from __future__ import annotations


class SpotgateError(Exception):
    """Base of every error spotgate raises on purpose."""


class ConfigError(SpotgateError):
    """The fleet configuration or the settings are invalid; the message names the field."""


class PermanentError(SpotgateError):
    """Retrying the same operation cannot succeed."""


class NotFoundError(PermanentError):
    """The named resource does not exist."""


class InvalidEventError(PermanentError):
    """An inbound event or message cannot be parsed; it is acked and logged, not retried."""


class PermissionDeniedError(PermanentError):
    """The caller's identity is not allowed to do this."""


class TransientError(SpotgateError):
    """The operation may succeed if retried later."""


class CapacityError(TransientError):
    """A zone has no SPOT capacity for the request (``ZONE_RESOURCE_POOL_EXHAUSTED*``).

    ``zones_available`` holds the zones GCE named as still having capacity, when it said.
    """

    def __init__(self, message: str, *, zone: str, code: str, zones_available: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.zone = zone
        self.code = code
        self.zones_available = zones_available


class QuotaError(TransientError):
    """A project or regional quota is exhausted (``QUOTA_EXCEEDED``)."""


class RateLimitError(TransientError):
    """The API refused the call for its request rate (GCE ``403 rateLimitExceeded``, HTTP 429).

    The same call succeeds after a backoff; nothing about the resource or the zone is wrong.
    """


class NotReadyError(TransientError):
    """The resource is in a transition that must finish first (GCE ``400 resourceNotReady``: still STOPPING).

    Retrying at once fails the same way; the next round, after the transition, succeeds.
    """


class ConflictError(TransientError):
    """Another writer holds the lease or changed the document first."""


class UnavailableError(TransientError):
    """A dependency (store, API, network) did not answer."""
