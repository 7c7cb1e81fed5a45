"""Injected GCE refusals: make the next N calls of one verb answer the way GCE answers under pressure.

Real GCE refuses calls the happy path never sees: ``403 rateLimitExceeded`` when a project sends too many
requests, ``403 quotaExceeded`` when a regional GPU quota is used up, ``400 resourceNotReady`` while a VM is
still in a transition, ``503 backendError``. The reason is in ``error.errors[].reason`` of the JSON body,
not in the status alone, so the sandbox answers with GCE's exact envelope and a test drives the real
``compute_v1`` client through each one. A start can also fail *in its operation* (``QUOTA_EXCEEDED``,
``UNSUPPORTED_OPERATION``: GCE reports these after accepting the call).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from spotgate.errors import PermanentError

VERBS = frozenset({"start", "stop", "list", "get"})

# reason -> (HTTP status, GCE's message, error domain) as GCE sends them synchronously.
SYNC_REASONS: dict[str, tuple[int, str, str]] = {
    "rateLimitExceeded": (403, "Rate Limit Exceeded", "usageLimits"),
    "userRateLimitExceeded": (403, "User Rate Limit Exceeded", "usageLimits"),
    "quotaExceeded": (403, "Quota 'NVIDIA_L4_GPUS' exceeded.  Limit: 1.0 in region us-central1.", "usageLimits"),
    "resourceNotReady": (400, "The resource is not ready", "global"),
    "backendError": (503, "Backend Error", "global"),
}

# code -> (httpErrorStatusCode, httpErrorMessage, message) of a start operation that GCE accepted, then failed.
OPERATION_CODES: dict[str, tuple[int, str, str]] = {
    "QUOTA_EXCEEDED": (403, "FORBIDDEN", "Quota 'NVIDIA_L4_GPUS' exceeded.  Limit: 1.0 in region us-central1."),
    "UNSUPPORTED_OPERATION": (400, "BAD REQUEST", "Instance failed to start due to preemption."),
    "RESOURCE_OPERATION_RATE_EXCEEDED": (
        403,
        "FORBIDDEN",
        "Operation rate exceeded for resource. Too frequent operations from the source resource.",
    ),
}


class FaultError(PermanentError):
    """A fault request outside what the sandbox can inject; the message lists what it can."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected refusal: a synchronous ``reason`` or, for ``start``, a failed operation's ``code``."""

    verb: str
    reason: str

    @property
    def synchronous(self) -> bool:
        return self.reason in SYNC_REASONS

    @classmethod
    def of(cls, verb: str, reason: str) -> Fault:
        """Raises FaultError for an unknown verb or reason."""
        if verb not in VERBS:
            raise FaultError(f"'verb' must be one of {sorted(VERBS)}")
        if reason not in SYNC_REASONS and not (verb == "start" and reason in OPERATION_CODES):
            known = sorted(SYNC_REASONS) + [f"{c} (start only)" for c in sorted(OPERATION_CODES)]
            raise FaultError(f"'reason' must be one of {known}")
        return cls(verb, reason)


class Faults:
    """Pending faults per verb, consumed one per call, oldest first. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, list[Fault]] = {}

    def inject(self, fault: Fault, times: int = 1) -> None:
        with self._lock:
            self._pending.setdefault(fault.verb, []).extend([fault] * times)

    def take(self, verb: str) -> Fault | None:
        """The next fault for ``verb``, removed; None when none is pending."""
        with self._lock:
            queue = self._pending.get(verb)
            return queue.pop(0) if queue else None

    def pending(self) -> dict[str, int]:
        with self._lock:
            return {verb: len(queue) for verb, queue in self._pending.items() if queue}

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
