"""Issuing a plan's actions: routes in one write, then each VM or overflow call, none stopping the others.

Failures are local (DESIGN §2.3): an action that fails (any error class) is recorded and folded into the
state (a failed start is forgotten so the next plan may retry it), and the plan's other actions still go
out. A call refused for the API's request rate backs off (full jitter, doubling) and is retried a few times.
Starts are only issued here; the control plane waits for them after it has released the pool's lease.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from spotgate.core.state_updates import record_start_failure
from spotgate.domain import (
    Action,
    DecisionRecord,
    Observed,
    Plan,
    PoolState,
    ProvisioningModel,
    SetOverflow,
    SetRoute,
    StartInstance,
    StopInstance,
)
from spotgate.errors import RateLimitError, SpotgateError
from spotgate.fleet import PoolSpec
from spotgate.ports import Compute, Overflow, PendingOperation, RouteStore
from spotgate.services.audit import action_kind, action_target, decision_record, error_reason
from spotgate.services.lease import PoolLease

log = logging.getLogger("spotgate.control_plane")

RATE_LIMIT_ATTEMPTS = 4  # a call refused for the API's rate is tried this often in all, backing off between
RATE_LIMIT_BACKOFF = 1.0  # seconds before the first retry; doubles each time, with full jitter


@dataclass(slots=True)
class Round:
    """What one round under the lease did: actions issued, starts still running, audit records."""

    lease: PoolLease | None = None
    wake_at: datetime | None = None  # when the planner wants to look at the pool again
    actions: list[Action] = field(default_factory=list)
    pending: list[tuple[StartInstance, PendingOperation]] = field(default_factory=list)
    records: list[DecisionRecord] = field(default_factory=list)
    observed: Observed | None = None  # what the round saw of the pool, for its history


class ActionIssuer:
    """Issues plans' actions through the Compute, Overflow and store ports."""

    def __init__(
        self,
        store: RouteStore,
        compute: Compute,
        overflow: Overflow | None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._compute = compute
        self._overflow = overflow
        self._sleep = sleep
        self._rng = rng or random.Random()

    def apply(self, spec: PoolSpec, decided: Plan, now: datetime, done: Round) -> PoolState:
        """Issue a plan's actions (routes first); returns the state to commit. Starts are left to finish."""
        state = decided.next_state
        routes = [a for a in decided.actions if isinstance(a, SetRoute)]
        self._put_routes(spec, routes, now, done)
        for action in decided.actions:
            if isinstance(action, SetRoute):
                continue
            if done.lease is not None:
                done.lease.check()  # never act for a pool whose lease another worker took meanwhile
            try:
                operation = self._issue_with_backoff(spec, action)
            except SpotgateError as e:
                if isinstance(action, StartInstance):  # forget the attempt so the next plan may retry at once
                    state = record_start_failure(state, action, e, now, spec)
                done.records.append(decision_record(spec, now, "error", action, str(e)))
                log.warning(
                    "action failed: %s",
                    e,
                    extra={"pool": spec.name, "action": action_kind(action), "reason": error_reason(e)},
                )
                continue
            done.actions.append(action)
            # One line per action, for the control-plane actions metric (infra/modules/observability).
            log.info(
                "action issued",
                extra={"pool": spec.name, "action": action_kind(action), "target": action_target(action)},
            )
            done.records.append(decision_record(spec, now, action_kind(action), action, action.reason))
            if isinstance(action, StartInstance) and operation is not None:
                done.pending.append((action, operation))
        return state

    def _put_routes(self, spec: PoolSpec, routes: list[SetRoute], now: datetime, done: Round) -> None:
        """Write the plan's routes in one call; a store failure is recorded and the other actions still go out."""
        if not routes:
            return
        try:
            self._store.put_routes([a.route for a in routes])
        except SpotgateError as e:  # the next round computes and writes them again
            done.records.extend(decision_record(spec, now, "error", a, str(e)) for a in routes)
            log.warning("routes not written: %s", e, extra={"pool": spec.name})
            return
        done.actions.extend(routes)
        done.records.extend(decision_record(spec, now, "route", a, a.reason) for a in routes)

    def _issue_with_backoff(self, spec: PoolSpec, action: Action) -> PendingOperation | None:
        """Issue one action; a rate-limit refusal is retried after an exponential backoff with full jitter."""
        attempt = 0
        while True:
            try:
                return self._issue(spec, action)
            except RateLimitError as e:
                attempt += 1
                if attempt >= RATE_LIMIT_ATTEMPTS:
                    raise
                delay = self._rng.uniform(0, RATE_LIMIT_BACKOFF * 2 ** (attempt - 1))
                log.info("rate limited, retrying in %.1fs: %s", delay, e, extra={"pool": spec.name})
                self._sleep(delay)

    def _issue(self, spec: PoolSpec, action: Action) -> PendingOperation | None:
        if isinstance(action, StartInstance) and action.resume:  # GCE refuses start on a SUSPENDED VM
            return self._compute.resume(action.zone, action.instance)
        if isinstance(action, StartInstance):
            self._give_notice(spec, action)
            return self._compute.start(action.zone, action.instance)
        if isinstance(action, StopInstance):
            return self._compute.stop(action.zone, action.instance)  # not waited on: the next tick observes it
        if isinstance(action, SetOverflow) and self._overflow is not None:
            self._overflow.set_min_instances(action.service, action.min_instances)
        return None

    def _give_notice(self, spec: PoolSpec, action: StartInstance) -> None:
        """Apply the pool's early preemption notice to a stopped SPOT VM before it starts (GCE allows it then).

        A VM that cannot get it still starts (failures are local): it serves with the 30 s notice only.
        """
        if spec.preemption_notice is None or action.provisioning_model is not ProvisioningModel.SPOT or action.resume:
            return
        try:
            if self._compute.set_preemption_notice(action.zone, action.instance, spec.preemption_notice):
                log.info("preemption notice set", extra={"pool": spec.name, "instance": action.instance})
        except RateLimitError:
            raise
        except SpotgateError as e:
            log.warning("preemption notice not set: %s", e, extra={"pool": spec.name, "instance": action.instance})
