"""The seams between the pure core and the outside world.

Every I/O dependency of the services and the gateway is one of these Protocols. Production adapters wrap
the Google client libraries; tests and local runs use the same adapters pointed at the sandbox, or the
SQLite store. Implementations raise only ``spotgate.errors`` types.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from spotgate.domain import (
    Activity,
    ApiKey,
    DecisionRecord,
    GatewayActivity,
    HistoryRecord,
    Instance,
    KeyUsage,
    PoolState,
    Route,
    ServedCount,
    ZoneAdvice,
)


class Clock(Protocol):
    """The one source of time. ``now()`` is timezone-aware UTC."""

    def now(self) -> datetime: ...


class PendingOperation(Protocol):
    """A Compute operation that was accepted and may still be running."""

    def wait(self) -> None:
        """Block until it finishes (bounded by the adapter's operation timeout; still running then counts as
        success, and the next reconcile observes the VM). Raises CapacityError (SPOT stockout, with
        zones_available hints), QuotaError, RateLimitError, NotReadyError, NotFoundError, UnavailableError
        or PermanentError, classified by the failed operation's error codes."""
        ...


class Compute(Protocol):
    """Start and stop existing VMs; never create or delete them (Terraform owns what exists).

    ``start``/``stop`` return as soon as GCE accepted the request, so a caller can let go of the pool's lease
    before waiting (a VM start takes a minute; other events for the pool must not queue behind it).
    """

    def list_instances(self, pool: str) -> list[Instance]:
        """Every VM labelled ``spotgate-pool=<pool>`` across all zones of the project."""
        ...

    def list_fleet(self) -> dict[str, list[Instance]]:
        """Every VM carrying the ``spotgate-pool`` label, by pool, in one listing (a fleet tick's only list).

        Zones that do not answer are left out (and logged) rather than failing the whole listing.
        """
        ...

    def resume(self, zone: str, instance: str) -> PendingOperation:
        """Ask GCE to resume a SUSPENDED VM (``start`` is refused on one); raises like ``start``."""
        ...

    def start(self, zone: str, instance: str) -> PendingOperation:
        """Ask GCE to start a VM (a no-op operation if it is already running).

        Raises at once what GCE refuses synchronously, classified by its reason code: NotFoundError,
        NotReadyError (still STOPPING), RateLimitError, QuotaError, PermissionDeniedError, UnavailableError.
        Capacity errors surface from ``wait()``.
        """
        ...

    def stop(self, zone: str, instance: str) -> PendingOperation:
        """Ask GCE to stop a VM (a no-op operation if it is already stopped)."""
        ...

    def set_preemption_notice(self, zone: str, instance: str, notice: timedelta) -> bool:
        """Make a stopped SPOT VM carry GCE's early preemption notice; True if it changed (idempotent).

        Returns once GCE applied it (it must be done before the VM starts). Not SPOT: nothing to do (False).
        """
        ...


class CapacityAdvisor(Protocol):
    """Compute Engine's capacity advice (``advice.capacity``) for one SPOT VM of a machine type."""

    def zone_advice(self, zones: Sequence[str], machine_type: str) -> dict[str, ZoneAdvice]:
        """Advice per zone; zones GCE said nothing about are absent. Raises SpotgateError (unknown now)."""
        ...


class Overflow(Protocol):
    """A pool's Cloud Run GPU overflow service, by its short service name."""

    def get_min_instances(self, service: str) -> int:
        """The service-level ``scaling.minInstanceCount``. Callers treat any error as "unknown"."""
        ...

    def set_min_instances(self, service: str, count: int) -> None:
        """Set service-level min instances (takes effect without a new revision)."""
        ...


class WakeScheduler(Protocol):
    """Reconcile a pool again at a given time (the planner's ``requeue_after``), not at the next minute tick."""

    def schedule(self, pool: str, due: datetime) -> None:
        """Arrange a tick for ``pool`` at ``due`` or a few seconds after; wake-ups of one pool due at about
        the same time are deduplicated. Raises UnavailableError (the minute tick remains the fallback)."""
        ...


class Publisher(Protocol):
    """Publish spotgate control messages (JSON objects) to a Pub/Sub topic by short name."""

    def publish(self, topic: str, message: Mapping[str, Any]) -> str:
        """Publish and return the message id. Raises UnavailableError."""
        ...


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the gateway serves from memory: every route and key, as of ``version``."""

    routes: tuple[Route, ...]
    keys: tuple[ApiKey, ...]
    version: int


class Subscription(Protocol):
    def close(self) -> None:
        """Stop delivering changes; idempotent."""
        ...


class RouteStore(Protocol):
    """Routing table, pool state, activity, the audit trail, pool history and API keys.

    Writers (decision in DESIGN §2.1): the control plane writes routes, pool state, events and history; the
    gateway writes only activity and its counts (per-key usage, where requests were served, added up as
    deltas); the CLI writes only keys.
    """

    # routes (control plane writes, gateway reads)
    def list_routes(self, pool: str | None = None) -> list[Route]: ...
    def put_routes(self, routes: Sequence[Route]) -> None:
        """Upsert these routes (by ``Route.key``)."""
        ...

    def delete_routes(self, keys: Sequence[str]) -> None: ...

    # pool state (control plane)
    def get_pool_state(self, pool: str) -> PoolState:
        """The committed state, or a fresh ``PoolState(pool)`` with generation 0."""
        ...

    def commit_pool_state(self, state: PoolState, expected_generation: int) -> PoolState:
        """Store ``state`` with generation ``expected_generation + 1`` and return it.

        Raises ConflictError if the stored generation is not ``expected_generation``.
        """
        ...

    # lease: serialises reconciles of one pool across processes
    def acquire_lease(self, pool: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        """Take the pool's lease if it is free, expired or already ours; True on success."""
        ...

    def release_lease(self, pool: str, holder: str) -> None: ...

    # activity (gateway writes)
    def record_activity(self, record: GatewayActivity) -> None:
        """Store one gateway instance's record for one pool whole, replacing its previous one."""
        ...

    def get_activity(self, pool: str, now: datetime) -> Activity:
        """The pool's activity summed over every gateway instance's record (``activity_merge.sum_activity``):
        in-flight gauges over the records live at ``now``, newest times and total counts over all kept."""
        ...

    # audit trail (control plane writes; bounded)
    def append_events(self, records: Sequence[DecisionRecord]) -> None: ...
    def recent_events(self, pool: str | None = None, limit: int = 50) -> list[DecisionRecord]:
        """Newest first."""
        ...

    # history (control plane writes; kept ``HISTORY_RETENTION``, read by ``spotgate report``)
    def append_history(self, records: Sequence[HistoryRecord]) -> None: ...
    def list_history(self, pool: str, since: datetime) -> list[HistoryRecord]:
        """The pool's records from ``since`` on, oldest first (equal times in the order appended)."""
        ...

    # where requests were served (gateway writes, ``spotgate report`` reads)
    def record_served(self, counts: Sequence[ServedCount]) -> None:
        """Add these counts to the stored ones (same pool, minute and kind add up)."""
        ...

    def list_served(self, pool: str, since: datetime) -> list[ServedCount]:
        """The pool's counts from the minute ``since`` falls in on, sorted by minute and kind."""
        ...

    # keys (CLI writes, gateway reads)
    def put_key(self, key: ApiKey) -> None: ...
    def list_keys(self) -> list[ApiKey]: ...

    # per-key usage and shared rate (gateway writes)
    def record_usage(self, usage: Sequence[KeyUsage]) -> None:
        """Add these counts to the stored ones (same key, pool and hour add up)."""
        ...

    def list_usage(self, since: datetime) -> list[KeyUsage]:
        """Every stored hour from ``since`` on, sorted by hour, key, pool."""
        ...

    def take_key_tokens(self, key_id: str, rate: float, burst: float, want: int, now: datetime) -> int:
        """Take up to ``want`` tokens from the key's shared bucket (refilled at ``rate`` per second up to
        ``burst``) in one transaction; the number taken (0 when empty)."""
        ...

    def put_key_inflight(self, instance: str, counts: Mapping[str, int], expires_at: datetime) -> None:
        """Replace gateway ``instance``'s in-flight requests per key (valid until ``expires_at``)."""
        ...

    def key_inflight(self, now: datetime, exclude: str) -> dict[str, int]:
        """In-flight requests per key summed over the records of other instances still valid at ``now``."""
        ...

    # per-instance records (gateway writes, control plane prunes)
    def prune_expired(self, now: datetime, limit: int) -> int:
        """Delete up to ``limit`` per-instance records (activity, in flight per key) whose own ``expires_at``
        is more than ``activity_merge.RETENTION`` before ``now``; the number deleted (0 when none is due).

        Every gateway process writes its own records under a new id, so without this they pile up and every
        ``get_activity`` reads the dead ones. A live record, or one rewritten since it was found, is never
        deleted: the expiry is checked in the deleting transaction. Idempotent, and safe when two callers
        prune at once.
        """
        ...

    # change feed for the gateway
    def snapshot(self) -> Snapshot: ...
    def watch(self, on_change: Callable[[Snapshot], None]) -> Subscription:
        """Call ``on_change`` with a full snapshot now and after routes or keys change."""
        ...
