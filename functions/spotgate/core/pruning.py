"""What a pool's memory may forget after a reconcile, so ``PoolState`` stays small and never misleads.

Notices and boot progress from a VM's previous boot, ended cooldowns and overrides, preemptions and
stockouts older than placement looks at, start attempts past their boot timeout, and failed starts of VMs
since seen live (or long ago) carry no information any more; keeping them would only make the document grow
and invite a stale fact to be read as a fresh one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from spotgate.core.backoff import remembered
from spotgate.core.lifecycle import Vm, current_notice, current_progress
from spotgate.core.placement import PREEMPTION_MEMORY, stocked_out
from spotgate.domain import PoolState
from spotgate.fleet import PoolSpec


def pruned(state: PoolState, spec: PoolSpec, vms: Sequence[Vm], now: datetime) -> PoolState:
    """``state`` without facts that can no longer matter at ``now``; stamped ``updated_at=now``."""
    observed = {vm.name: vm for vm in vms}
    stockouts = stocked_out(state, now)
    override = state.override if state.override is not None and state.override.until > now else None
    return replace(
        state,
        notices={
            name: notice
            for name, notice in state.notices.items()
            if spec.vm(name) is not None
            and (name not in observed or current_notice(observed[name].instance, state) is not None)
        },
        stockouts=stockouts,
        zones_available=state.zones_available if stockouts else (),
        preemptions=tuple(p for p in state.preemptions if now - p.at <= PREEMPTION_MEMORY),
        stockout_history=tuple(s for s in state.stockout_history if now - s.at <= PREEMPTION_MEMORY),
        override=override,
        start_attempts={name: at for name, at in state.start_attempts.items() if now - at <= spec.boot_timeout},
        progress={
            name: progress
            for name, progress in state.progress.items()
            if name in observed
            and observed[name].instance.status.is_live
            and current_progress(observed[name].instance, state) is not None
        },
        start_failures={
            name: failure
            for name, failure in state.start_failures.items()
            if spec.vm(name) is not None
            and remembered(failure, now)
            and not (name in observed and observed[name].instance.status.is_live)
        },
        updated_at=now,
    )
