"""Fold what happened into a pool's memory: inbound events, and the outcome of start calls.

Pub/Sub delivers at least once and out of order, so every fold here is idempotent and keeps the newest
fact: a notice or a boot-progress report never replaces a newer one for the same VM, a duplicate
preemption is recorded once, and an override only yields to a newer override. What cannot be observed
again (notices, boot progress, stockouts, overrides, wake times) lives in ``PoolState``; everything else
is re-read by the next reconcile.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

from spotgate.core.backoff import next_failure
from spotgate.core.placement import PREEMPTION_MEMORY, STOCKOUTS_PER_ZONE
from spotgate.domain import (
    ComputeEvent,
    ComputeEventKind,
    ControlKind,
    ControlMessage,
    InboundEvent,
    Notice,
    NoticeKind,
    Override,
    OverrideKind,
    PoolState,
    Preemption,
    Progress,
    ProvisioningModel,
    StartInstance,
    Stockout,
)
from spotgate.errors import CapacityError, QuotaError
from spotgate.fleet import PoolSpec

# A sleep without ``until`` lasts until the next wake (a request, or an operator's wake).
FOREVER = datetime.max.replace(tzinfo=UTC)

# System events after which the VM is going away: stop routing to it at once.
_GOING_AWAY = frozenset(
    {
        ComputeEventKind.PREEMPTED,
        ComputeEventKind.HOST_ERROR,
        ComputeEventKind.TERMINATE_ON_HOST_MAINTENANCE,
        ComputeEventKind.GUEST_TERMINATE,
    }
)


def apply_event(state: PoolState, event: InboundEvent, spec: PoolSpec) -> PoolState:
    """``state`` with the event folded in; unchanged for ticks, ignored events and VMs of other pools."""
    if isinstance(event, ComputeEvent):
        if spec.vm(event.instance) is None:
            return state
        return _apply_compute_event(state, event)
    if isinstance(event, ControlMessage):
        if (event.pool and event.pool != spec.name) or (event.instance and spec.vm(event.instance) is None):
            return state
        return _apply_control_message(state, event)
    return state


def is_going_away(event: InboundEvent) -> bool:
    """True for a system event or agent notice after which the VM stops serving (the fast path's trigger)."""
    if isinstance(event, ComputeEvent):
        return event.kind in _GOING_AWAY
    return isinstance(event, ControlMessage) and event.kind is ControlKind.DRAINING


def record_start_issued(state: PoolState, action: StartInstance, now: datetime) -> PoolState:
    """Remember that a start was issued, so the planner does not issue it again while the VM boots."""
    return replace(state, start_attempts={**state.start_attempts, action.instance: now})


def record_start_failure(
    state: PoolState, action: StartInstance, error: Exception, now: datetime, spec: PoolSpec
) -> PoolState:
    """``state`` after a failed start: the attempt is forgotten and the VM backs off (``core.backoff``).

    Every failure is remembered per VM with its class, so the VM is not tried again back to back. A SPOT
    stockout (``CapacityError``) also blocks its zone for ``stockout_cooldown``, keeps GCE's
    ``zonesAvailable`` hint and is remembered in ``stockout_history`` (placement weighs it against the
    zone); a SPOT ``QuotaError`` blocks every zone of the pool in that VM's region (GPU quotas are regional,
    and a pool may span regions; no stockout is remembered: the zone had no say). Either starts the fallback
    timer. A STANDARD failure blocks only that VM (its quota is not SPOT's).
    """
    attempts = {name: at for name, at in state.start_attempts.items() if name != action.instance}
    failure = next_failure(state.start_failures.get(action.instance), error, now, spec)
    state = replace(state, start_attempts=attempts, start_failures={**state.start_failures, action.instance: failure})
    if action.provisioning_model is not ProvisioningModel.SPOT:
        return state
    until = now + spec.stockout_cooldown
    if isinstance(error, CapacityError):
        zone = error.zone or action.zone
        state = replace(
            _with_stockout(state, Stockout(action.instance, zone, now)),
            stockouts={**state.stockouts, zone: until},
            zones_available=error.zones_available or state.zones_available,
        )
    elif isinstance(error, QuotaError):
        region = _region(action.zone)
        blocked = [zone for zone in spec.zones if _region(zone) == region]
        state = replace(state, stockouts={**state.stockouts, **dict.fromkeys(blocked, until)})
    else:
        return state
    return replace(state, spot_unavailable_since=state.spot_unavailable_since or now)


def _region(zone: str) -> str:
    """``us-central1`` of ``us-central1-a``."""
    return zone.rsplit("-", 1)[0]


def _apply_compute_event(state: PoolState, event: ComputeEvent) -> PoolState:
    if event.kind not in _GOING_AWAY:
        # automaticRestart: the VM boots again; its new lastStartTimestamp already outdates old notices.
        return state
    state = _with_notice(state, event.instance, Notice(NoticeKind.DRAINING, event.at))
    if event.kind is ComputeEventKind.PREEMPTED:
        state = _with_preemption(state, Preemption(event.instance, event.zone, event.at))
    return state


def _apply_control_message(state: PoolState, message: ControlMessage) -> PoolState:
    if message.kind in (ControlKind.READY, ControlKind.DRAINING) and message.instance:
        return _with_notice(state, message.instance, Notice(NoticeKind(message.kind.value), message.at))
    if message.kind is ControlKind.PROGRESS and message.instance and message.phase is not None:
        return _with_progress(state, message.instance, Progress(message.phase, message.at))
    if message.kind is ControlKind.WAKE and message.until is None:
        return _with_wake(state, message.at)
    if message.kind in (ControlKind.WAKE, ControlKind.SLEEP):
        until = message.until or FOREVER
        return _with_override(state, Override(OverrideKind(message.kind.value), until, message.at))
    return state


def _with_notice(state: PoolState, instance: str, notice: Notice) -> PoolState:
    current = state.notices.get(instance)
    if current is not None and _outranks(current, notice):
        return state
    return replace(state, notices={**state.notices, instance: notice})


def _with_progress(state: PoolState, instance: str, progress: Progress) -> PoolState:
    """The newest progress report wins; a late duplicate of an older one changes nothing."""
    current = state.progress.get(instance)
    if current is not None and current.at >= progress.at:
        return state
    return replace(state, progress={**state.progress, instance: progress})


def _outranks(current: Notice, new: Notice) -> bool:
    """Older notices never win; at the same instant ``draining`` wins, because it is the safe answer."""
    if current.at != new.at:
        return current.at > new.at
    return current.kind is NoticeKind.DRAINING or current == new


def _with_preemption(state: PoolState, preemption: Preemption) -> PoolState:
    if preemption in state.preemptions:
        return state
    kept = tuple(p for p in state.preemptions if preemption.at - p.at <= PREEMPTION_MEMORY)
    return replace(state, preemptions=tuple(sorted((*kept, preemption), key=lambda p: (p.at, p.instance))))


def _with_stockout(state: PoolState, stockout: Stockout) -> PoolState:
    """``stockout`` added to the history, which keeps ``PREEMPTION_MEMORY`` and the newest
    ``STOCKOUTS_PER_ZONE`` of each zone, so it stays bounded however often a zone refuses starts."""
    if stockout in state.stockout_history:
        return state
    recent = (s for s in state.stockout_history if stockout.at - s.at <= PREEMPTION_MEMORY)
    kept: list[Stockout] = []
    per_zone: Counter[str] = Counter()
    for one in sorted((*recent, stockout), key=lambda s: (s.at, s.instance), reverse=True):
        if per_zone[one.zone] < STOCKOUTS_PER_ZONE:
            kept.append(one)
            per_zone[one.zone] += 1
    return replace(state, stockout_history=tuple(reversed(kept)))


def _with_wake(state: PoolState, at: datetime) -> PoolState:
    """The gateway's wake: restarts the idle timer, and ends an open-ended sleep sent before it."""
    if state.last_wake_at is not None and state.last_wake_at >= at:
        return state
    override = state.override
    if override is not None and override.kind is OverrideKind.SLEEP and override.until == FOREVER and override.at < at:
        override = None
    return replace(state, last_wake_at=at, override=override)


def _with_override(state: PoolState, override: Override) -> PoolState:
    if state.override is not None and state.override.at >= override.at:
        return state
    return replace(state, override=override)
