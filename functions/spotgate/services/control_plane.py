"""The control plane's imperative shell: every event ends in ``reconcile(pool)``.

Level-triggered (DESIGN §2.3): an event is folded into the pool's remembered state, then the shell gathers
what is observable now (VMs, routes, activity, overflow scaling), asks the pure planner what to do, applies
the actions, and commits the next state. A missed or duplicated event is harmless: the next tick repairs it.

Reconciles of one pool are serialised by a store lease; if another worker holds it, an informative event
raises ``ConflictError`` (Pub/Sub redelivers it later) while a tick is simply skipped (the other worker is
already reconciling).

Failures are local (DESIGN §2.3): one failed action never prevents the other actions nor the commit of the
folded event (``issuing``); one failed pool never fails another pool's tick; the overflow read is optional
("unknown" when it fails). A fleet tick lists every VM once and issues every pool's starts before waiting
on any, then prunes the gateway's long-expired per-instance records. The lease is renewed while a round
runs (``lease``); the plan's ``requeue_after`` becomes a scheduled wake-up (``WakeScheduler``). What was
done is recorded and logged by ``audit``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from spotgate.core.events import pool_of
from spotgate.core.fast_path import fast_path_routes
from spotgate.core.health import pool_health
from spotgate.core.planner import plan
from spotgate.core.state_updates import apply_event, is_going_away, record_start_failure
from spotgate.domain import (
    Action,
    ComputeEvent,
    ControlKind,
    ControlMessage,
    DecisionRecord,
    Ignored,
    InboundEvent,
    Instance,
    Observed,
    Plan,
    PoolState,
    StartInstance,
    ZoneAdvice,
)
from spotgate.errors import CapacityError, ConflictError, QuotaError, SpotgateError
from spotgate.fleet import FleetConfig, PoolSpec
from spotgate.ports import CapacityAdvisor, Clock, Compute, Overflow, PendingOperation, RouteStore, WakeScheduler
from spotgate.services.audit import decision_record, describe_action, describe_event, error_reason, log_plan
from spotgate.services.history_recorder import HistoryRecorder
from spotgate.services.issuing import RATE_LIMIT_ATTEMPTS, ActionIssuer, Round
from spotgate.services.lease import PoolLease

__all__ = ["MAX_PLAN_ROUNDS", "RATE_LIMIT_ATTEMPTS", "ControlPlane", "Outcome", "describe_action"]

log = logging.getLogger("spotgate.control_plane")

LEASE_PATIENCE = timedelta(seconds=30)  # how long a round carrying failed starts waits for the pool's lease
MAX_PARALLEL_POOLS = 32  # first rounds of a fleet tick in flight at once (store reads and API calls, no waits)
MAX_PLAN_ROUNDS = 4  # a failed start re-plans at once, so it moves to another zone within the same call
PRUNE_LIMIT = 100  # dead per-instance store records deleted per fleet tick: more than Cloud Run retires a minute


@dataclass(frozen=True, slots=True)
class Outcome:
    """What handling one event did, for the entry point's log line and for tests."""

    pools: tuple[str, ...]
    actions: tuple[Action, ...] = ()
    skipped: str = ""


class ControlPlane:
    """Handles inbound events for a fleet; one instance per process (functions reuse it across calls)."""

    def __init__(
        self,
        fleet: FleetConfig,
        store: RouteStore,
        compute: Compute,
        overflow: Overflow | None,
        clock: Clock,
        *,
        lease_ttl: timedelta = timedelta(seconds=60),
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        advisor: CapacityAdvisor | None = None,
        scheduler: WakeScheduler | None = None,
    ) -> None:
        self.fleet = fleet
        self._advisor = advisor
        self._store = store
        self._compute = compute
        self._overflow = overflow
        self._clock = clock
        self._lease_ttl = lease_ttl
        self._issuer = ActionIssuer(store, compute, overflow, sleep=sleep, rng=rng)
        self._scheduler = scheduler
        self._history = HistoryRecorder(store)

    def handle(self, event: InboundEvent) -> Outcome:
        """Fold ``event`` into state and reconcile the pools it concerns.

        Raises TransientError (the delivery should be retried); never raises for irrelevant events.
        """
        if isinstance(event, Ignored):
            log.info("event ignored: %s", event.reason, extra={"reason": event.reason})
            return Outcome((), skipped=event.reason)
        if isinstance(event, ControlMessage) and event.kind is ControlKind.TICK and event.pool is None:
            return self._tick_all()
        spec = self._pool_of(event)
        if spec is None:
            reason = f"no pool owns {describe_event(event)}"
            log.info("event ignored: %s", reason, extra={"reason": reason})
            return Outcome((), skipped=reason)
        self._fast_path(spec, event)
        return self.reconcile(spec, event)

    def reconcile(
        self, spec: PoolSpec, event: InboundEvent | None = None, instances: Sequence[Instance] | None = None
    ) -> Outcome:
        """Plan and apply under the pool's lease, then wait for VM starts *outside* it.

        A start takes about a minute on GCE; holding the lease that long would bounce every other event for
        the pool into redelivery. A start that fails (a SPOT stockout, most often) is folded into the state in
        a new round under the lease, which plans again, so the start moves to another zone in this call.
        ``instances`` is the pool's VMs when the caller listed them already (a fleet tick lists once).
        """
        return self._finish(spec, self._round(spec, event, [], instances=instances))

    def _finish(self, spec: PoolSpec, first: Round) -> Outcome:
        """Wait for the first round's starts; a stockout or quota replans at once (another zone)."""
        applied = list(first.actions)
        failures = self._wait_for_starts(spec, first.pending)
        for _ in range(MAX_PLAN_ROUNDS - 1):
            if not any(isinstance(e, CapacityError | QuotaError) for _, e in failures):
                break  # only a stockout or quota moves the next start elsewhere; anything else waits a round
            follow_up = self._round(spec, None, failures)
            applied.extend(follow_up.actions)
            failures = self._wait_for_starts(spec, follow_up.pending)
        if failures:
            self._round(spec, None, failures, act=False)  # remember the last failures; the next round retries
        return Outcome((spec.name,), tuple(applied))

    def preview(self, spec: PoolSpec) -> Plan:
        """What ``reconcile`` would do now, without applying or committing anything (``spotgate plan``)."""
        return plan(spec, self._gather(spec), self._store.get_pool_state(spec.name), self._clock.now())

    def _tick_all(self) -> Outcome:
        """Reconcile every pool from one listing; every pool's starts are issued before any is awaited.

        One label-filtered ``aggregatedList`` serves the whole tick (not one per pool). The first rounds run
        side by side and return as soon as their actions are issued; only then are the starts awaited, each
        pool in its own thread, so no pool's start waits behind another pool's VM boot.
        """
        pools = self.fleet.pools
        listing = self._compute.list_fleet()
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_POOLS, len(pools)), thread_name_prefix="tick") as pool:
            firsts = list(pool.map(lambda spec: self._tick_first(spec, listing.get(spec.name, [])), pools))
        with ThreadPoolExecutor(max_workers=len(pools), thread_name_prefix="tick-wait") as waiters:
            outcomes = list(waiters.map(self._tick_finish, pools, firsts))
        actions = tuple(a for outcome in outcomes for a in outcome.actions)
        self._prune_expired()
        return Outcome(tuple(p.name for p in pools), actions)

    def _prune_expired(self) -> None:
        """Delete gateway records long expired (``RouteStore.prune_expired``), at most ``PRUNE_LIMIT`` a tick.

        The fleet tick is the one pruner: it runs every minute anyway, after the reconciles have read the
        activity, so pruning costs no new process and never delays a decision. A failure is logged; the
        next tick tries again.
        """
        try:
            pruned = self._store.prune_expired(self._clock.now(), PRUNE_LIMIT)
        except SpotgateError as e:
            log.warning("expired gateway records not pruned: %s", e)
            return
        if pruned:
            log.info("pruned %d expired gateway records", pruned, extra={"pruned": pruned})

    def _tick_first(self, spec: PoolSpec, instances: Sequence[Instance]) -> Round | Outcome:
        """One pool's first round of a tick; a failure is logged and never fails the other pools."""
        try:
            return self._round(spec, None, [], instances=instances)
        except ConflictError:
            log.info("tick skipped: pool busy", extra={"pool": spec.name})
            return Outcome((spec.name,), skipped="pool busy")
        except Exception as e:  # outermost shell of one pool (DESIGN §2.3): the next tick retries it
            log.exception("tick failed for pool %s: %s", spec.name, e, extra={"pool": spec.name})
            return Outcome((spec.name,), skipped=f"failed: {e}")

    def _tick_finish(self, spec: PoolSpec, first: Round | Outcome) -> Outcome:
        if isinstance(first, Outcome):
            return first
        try:
            return self._finish(spec, first)
        except Exception as e:  # outermost shell of one pool: its actions went out; the next tick repairs
            log.exception("tick failed for pool %s: %s", spec.name, e, extra={"pool": spec.name})
            return Outcome((spec.name,), tuple(first.actions), skipped=f"failed: {e}")

    def _round(
        self,
        spec: PoolSpec,
        event: InboundEvent | None,
        failures: list[tuple[StartInstance, SpotgateError]],
        *,
        act: bool = True,
        instances: Sequence[Instance] | None = None,
    ) -> Round:
        """Under the lease: fold the event and failed starts into state, plan, issue actions, commit.

        A first round gives up at once when another worker holds the lease (the delivery is retried). A
        follow-up round carries failed starts that exist nowhere else, so it waits for the lease: holders keep
        it only to plan and issue, never while a VM boots. The lease is renewed while the round runs.
        """
        patience = LEASE_PATIENCE if failures else timedelta(0)
        with PoolLease(self._store, self._clock, spec.name, self._lease_ttl, patience=patience) as lease:
            stored = self._store.get_pool_state(spec.name)
            state = apply_event(stored, event, spec) if event is not None else stored
            now = self._clock.now()
            done = Round(lease=lease)
            for action, error in failures:
                state = record_start_failure(state, action, error, now, spec)
                done.records.append(decision_record(spec, now, "error", action, str(error)))
            if act:
                state = self._decide_and_apply(spec, state, stored, now, done, instances=instances)
            lease.check()
            committed = self._store.commit_pool_state(replace(state, updated_at=self._clock.now()), stored.generation)
            self._store.append_events([replace(r, generation=committed.generation) for r in done.records])
        stockouts = [a for a, e in failures if isinstance(e, CapacityError)]
        self._history.record_round(
            spec.name, now, event=event, observed=done.observed, applied=done.actions, stockouts=stockouts
        )
        self._schedule_wake(spec, done.wake_at)
        return done

    def _schedule_wake(self, spec: PoolSpec, wake_at: datetime | None) -> None:
        """Turn the plan's ``requeue_after`` into a scheduled tick for the pool (the minute tick is the fallback)."""
        if wake_at is None or self._scheduler is None:
            return
        try:
            self._scheduler.schedule(spec.name, wake_at)
        except SpotgateError as e:
            log.warning("wake-up not scheduled: %s", e, extra={"pool": spec.name})

    def _decide_and_apply(
        self,
        spec: PoolSpec,
        state: PoolState,
        stored: PoolState,
        now: datetime,
        done: Round,
        *,
        instances: Sequence[Instance] | None,
    ) -> PoolState:
        """Gather, plan and apply; if gathering fails, commit the folded event anyway (a ``ready`` notice is
        never re-sent), then let the error go so the delivery is retried."""
        try:
            observed = self._gather(spec, instances)
        except SpotgateError:
            self._store.commit_pool_state(replace(state, updated_at=self._clock.now()), stored.generation)
            raise
        done.observed = observed
        decided = plan(spec, observed, state, now)
        log_plan(spec, decided, pool_health(spec, observed, state, now))
        if decided.requeue_after is not None:
            done.wake_at = now + decided.requeue_after
        return self._issuer.apply(spec, decided, now, done)

    def _wait_for_starts(
        self, spec: PoolSpec, pending: list[tuple[StartInstance, PendingOperation]]
    ) -> list[tuple[StartInstance, SpotgateError]]:
        failures: list[tuple[StartInstance, SpotgateError]] = []
        for action, operation in pending:
            try:
                operation.wait()
            except SpotgateError as e:
                log.warning(
                    "start failed: %s",
                    e,
                    extra={
                        "pool": spec.name,
                        "instance": action.instance,
                        "zone": action.zone,
                        "reason": error_reason(e),
                    },
                )
                failures.append((action, e))
        return failures

    def _gather(self, spec: PoolSpec, instances: Sequence[Instance] | None = None) -> Observed:
        listed = instances if instances is not None else self._compute.list_instances(spec.name)
        return Observed(
            instances=tuple(listed),
            routes=tuple(self._store.list_routes(spec.name)),
            activity=self._store.get_activity(spec.name, self._clock.now()),
            overflow_min_instances=self._overflow_min(spec),
            advice=self._advice(spec),
        )

    def _advice(self, spec: PoolSpec) -> dict[str, ZoneAdvice]:
        """Capacity advice for the pool's SPOT zones; empty when off, or "unknown" when GCE does not answer
        (an optional dependency never keeps VMs from being started, DESIGN §2.3)."""
        if spec.capacity_advice is None or self._advisor is None or not spec.spot_vms:
            return {}
        zones = sorted({vm.zone for vm in spec.spot_vms})
        try:
            return self._advisor.zone_advice(zones, spec.capacity_advice.machine_type)
        except SpotgateError as e:
            log.warning("capacity advice unknown: %s", e, extra={"pool": spec.name})
            return {}

    def _overflow_min(self, spec: PoolSpec) -> int | None:
        """The overflow service's min instances, or None ("unknown") when it has none or does not answer.

        The overflow service is optional: a 503, 429, 403 or 404 (renamed service) from Cloud Run must not
        keep the pool's VMs from being started or stopped.
        """
        if spec.overflow is None or self._overflow is None:
            return None
        try:
            return self._overflow.get_min_instances(spec.overflow.service)
        except SpotgateError as e:
            log.warning("overflow state unknown: %s", e, extra={"pool": spec.name, "service": spec.overflow.service})
            return None

    def _fast_path(self, spec: PoolSpec, event: InboundEvent) -> None:
        """Mark a preempted or draining VM's route ``draining`` before anything slower happens.

        Only a going-away event reads the routes: every other event goes straight to the reconcile.
        """
        if not is_going_away(event):
            return
        try:
            now = self._clock.now()
            changed = fast_path_routes(event, self._store.list_routes(spec.name), now)
            if changed:
                self._store.put_routes(changed)
                # In the audit trail too (spotgate status), like every other route change.
                self._store.append_events(
                    [
                        DecisionRecord(
                            spec.name, now, "route", f"{r.backend}={r.state.value}", f"{r.reason} (fast path)"
                        )
                        for r in changed
                    ]
                )
                log.info(
                    "route draining (fast path)", extra={"pool": spec.name, "backends": [r.backend for r in changed]}
                )
        except SpotgateError as e:  # the reconcile that follows repairs routes anyway
            log.warning("fast path failed: %s", e, extra={"pool": spec.name})

    def _pool_of(self, event: ComputeEvent | ControlMessage) -> PoolSpec | None:
        """The owning pool by VM name *and zone*: names are unique per zone only (core.events.pool_of)."""
        return pool_of(event, self.fleet)
