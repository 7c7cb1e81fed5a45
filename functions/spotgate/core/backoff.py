"""When a VM whose start failed may be tried again, by the class of the failure.

Retrying a failed start at once only repeats the failure and spends API quota: a rate limit needs the caller
to slow down, a VM still STOPPING needs its transition to finish, a stockout or exhausted quota lasts
minutes, and an unknown failure (a missing permission, a renamed VM) will not fix itself within seconds.
So every failed start keeps its VM out of placement for a delay that depends on the class and doubles
with each failure in a row, up to a cap; the failure is remembered in ``PoolState.start_failures`` (and
its reason shows in the next start's reason) until the VM is seen live or the memory lapses.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from spotgate.domain import FailureKind, PoolState, StartFailure
from spotgate.errors import CapacityError, NotReadyError, QuotaError, RateLimitError
from spotgate.fleet import PoolSpec

# (first delay, cap) per class; capacity and quota use the pool's stockout_cooldown instead (see delay()).
_DELAYS = {
    FailureKind.RATE_LIMIT: (timedelta(seconds=15), timedelta(minutes=5)),
    FailureKind.NOT_READY: (timedelta(seconds=15), timedelta(minutes=2)),
    FailureKind.OTHER: (timedelta(minutes=1), timedelta(minutes=30)),
}
# A failure this much older than its retry time no longer counts toward the next one's doubling.
FAILURE_MEMORY = timedelta(hours=1)


def failure_kind(error: Exception) -> FailureKind:
    """The class of a failed start, from spotgate's error type (adapters classify GCE's reason codes)."""
    if isinstance(error, CapacityError):
        return FailureKind.CAPACITY
    if isinstance(error, QuotaError):
        return FailureKind.QUOTA
    if isinstance(error, RateLimitError):
        return FailureKind.RATE_LIMIT
    if isinstance(error, NotReadyError):
        return FailureKind.NOT_READY
    return FailureKind.OTHER


def delay(kind: FailureKind, count: int, spec: PoolSpec) -> timedelta:
    """How long to leave a VM alone after its ``count``-th failed start in a row of class ``kind``."""
    if kind in (FailureKind.CAPACITY, FailureKind.QUOTA):
        return spec.stockout_cooldown
    first, cap = _DELAYS[kind]
    return min(first * (1 << min(count - 1, 16)), cap)


def next_failure(previous: StartFailure | None, error: Exception, now: datetime, spec: PoolSpec) -> StartFailure:
    """The failure to remember for a VM after ``error``; ``previous`` is its last one, if still remembered."""
    kind = failure_kind(error)
    count = previous.count + 1 if previous is not None and remembered(previous, now) else 1
    return StartFailure(kind, now, now + delay(kind, count, spec), count, str(error)[:300])


def backing_off(state: PoolState, now: datetime) -> dict[str, StartFailure]:
    """VMs that may not be started yet, with the failure that holds each back."""
    return {name: failure for name, failure in state.start_failures.items() if failure.retry_at > now}


def remembered(failure: StartFailure, now: datetime) -> bool:
    """False once a failure is too old to count toward the next one's backoff."""
    return now - failure.retry_at <= FAILURE_MEMORY
