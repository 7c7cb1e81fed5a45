"""Where a VM stands during a boot: when its boot began, and when it is judged stuck (issue 9, defects 1, 12)."""

from __future__ import annotations

from datetime import datetime

import pytest

from spotgate.core.lifecycle import Phase, boot_started, classify
from spotgate.core.planner import plan
from spotgate.core.state_updates import apply_event, record_start_issued
from spotgate.domain import (
    BootPhase,
    ControlKind,
    ControlMessage,
    Instance,
    PoolState,
    Progress,
    StartInstance,
    StopInstance,
)
from tests.unit.builders import NOW, POOL, a_pool_spec, a_state, ago, all_vms, an_instance, later, observed

MIN1 = a_pool_spec(min_ready=1)

BOOT_STARTED_CASES = [
    pytest.param(
        an_instance("chat-a-1", "RUNNING", last_start=ago(minutes=2)), a_state(), ago(minutes=2), id="observed"
    ),
    pytest.param(
        an_instance("chat-a-1", "TERMINATED"),
        a_state(start_attempts={"chat-a-1": ago(seconds=5)}),
        ago(seconds=5),
        id="issued_only",
    ),
    pytest.param(
        # GCE: a restarted VM keeps its previous lastStartTimestamp until it is RUNNING again.
        an_instance("chat-a-1", "PROVISIONING", last_start=ago(hours=3)),
        a_state(start_attempts={"chat-a-1": ago(seconds=40)}),
        ago(seconds=40),
        id="restarted_vm_keeps_its_old_last_start",
    ),
    pytest.param(
        an_instance("chat-a-1", "RUNNING", last_start=ago(seconds=10)),
        a_state(start_attempts={"chat-a-1": ago(seconds=70)}),
        ago(seconds=10),
        id="running_vm_reports_the_new_start",
    ),
    pytest.param(an_instance("chat-a-1", "TERMINATED"), a_state(), None, id="never_started"),
]


@pytest.mark.parametrize(("instance", "state", "expected"), BOOT_STARTED_CASES)
def test_boot_started(instance: Instance, state: PoolState, expected: datetime | None) -> None:
    assert boot_started(instance, state) == expected


@pytest.mark.parametrize("status", ["PROVISIONING", "STAGING"])
def test_a_restarted_vm_that_is_still_provisioning_is_booting_not_stuck(status: str) -> None:
    vm = an_instance("chat-a-1", status, last_start=ago(hours=3))
    state = a_state(start_attempts={"chat-a-1": ago(seconds=40)})
    assert classify(vm, state, MIN1, NOW).phase is Phase.BOOTING


def test_cold_start_of_a_previously_booted_vm_does_not_livelock() -> None:
    """Defect 1: every reconcile during PROVISIONING/STAGING used to stop the booting VM and start another."""
    state = a_state()
    instances = {
        i.name: i
        for i in all_vms(
            **{
                n: an_instance(n.replace("_", "-"), last_start=ago(hours=3))
                for n in ("chat_a_1", "chat_b_1", "chat_c_1")
            }
        )
    }
    stops: list[str] = []
    starts: list[str] = []
    for step, status in enumerate(["TERMINATED", "PROVISIONING", "STAGING", "STAGING"]):
        now = later(seconds=20 * step)
        for name in starts:  # GCE: the new lastStartTimestamp appears only once the VM is RUNNING
            instances[name] = an_instance(name, status, last_start=ago(hours=3))
        result = plan(MIN1, observed(tuple(instances.values())), state, now)
        state = result.next_state
        for action in result.actions:
            if isinstance(action, StartInstance):
                starts.append(action.instance)
                state = record_start_issued(state, action, now)
            elif isinstance(action, StopInstance):
                stops.append(action.instance)
    assert (starts, stops) == (["chat-a-1"], [])


@pytest.mark.parametrize(("status", "resume"), [("SUSPENDED", True), ("TERMINATED", False), ("STOPPED", False)])
def test_a_suspended_vm_is_resumed_not_started(status: str, resume: bool) -> None:
    """Defect 13: GCE needs ``instances.resume`` for a SUSPENDED VM; ``start`` is refused."""
    seen = observed(all_vms(chat_a_1=an_instance("chat-a-1", status)))
    (start,) = [a for a in plan(MIN1, seen, a_state(), NOW).actions if isinstance(a, StartInstance)]
    assert (start.instance, start.resume) == ("chat-a-1", resume)
    assert start.reason.startswith(f"{'resume' if resume else 'start'} chat-a-1 (SPOT, us-central1-a)")


# ---- defect 12: boot_timeout is about lack of progress, not the length of a boot ----------------------------


def _progress(instance: str, phase: BootPhase, at: datetime) -> ControlMessage:
    return ControlMessage(ControlKind.PROGRESS, at, POOL, instance, "us-central1-a", phase=phase)


PROGRESS_CASES = [
    pytest.param(None, Phase.STUCK, id="no_report_past_boot_timeout"),
    pytest.param(Progress(BootPhase.COPYING_WEIGHTS, ago(minutes=5)), Phase.BOOTING, id="recent_phase_report"),
    pytest.param(Progress(BootPhase.LOADING, ago(minutes=11)), Phase.STUCK, id="no_report_for_boot_timeout"),
    pytest.param(Progress(BootPhase.LOADING, ago(minutes=26)), Phase.STUCK, id="report_from_a_previous_boot"),
]


@pytest.mark.parametrize(("progress", "phase"), PROGRESS_CASES)
def test_a_long_first_boot_is_stuck_only_without_progress(progress: Progress | None, phase: Phase) -> None:
    vm = an_instance("chat-a-1", "RUNNING", last_start=ago(minutes=25))
    state = a_state(progress={"chat-a-1": progress} if progress else {})
    assert classify(vm, state, MIN1, NOW).phase is phase


def test_a_25_minute_first_boot_that_reports_its_phases_is_never_stopped() -> None:
    """Defect 12: the agent allows 25 minutes for a first boot; the planner used to stop it at 10, forever."""
    (start,) = [a for a in plan(MIN1, observed(), a_state(), NOW).actions if isinstance(a, StartInstance)]
    state = record_start_issued(a_state(), start, NOW)
    running = an_instance("chat-a-1", "RUNNING", last_start=later(minutes=1))
    reports = {2: BootPhase.INSTALLING, 8: BootPhase.COPYING_WEIGHTS, 16: BootPhase.PULLING, 20: BootPhase.LOADING}
    stops: list[str] = []
    for minute in range(1, 26):
        now = later(minutes=minute)
        if minute in reports:
            state = apply_event(state, _progress("chat-a-1", reports[minute], now), MIN1)
        result = plan(MIN1, observed(all_vms(chat_a_1=running)), state, now)
        stops += [a.instance for a in result.actions if isinstance(a, StopInstance)]
        state = result.next_state
    assert stops == []
    stuck = plan(MIN1, observed(all_vms(chat_a_1=running)), state, later(minutes=30, seconds=1))
    (stop,) = [a for a in stuck.actions if isinstance(a, StopInstance)]
    assert "boot_timeout 0:10:00 of its last boot progress (loading at 12:20:00Z)" in stop.reason


def test_boot_progress_folds_newest_first_and_only_for_the_pools_vms() -> None:
    newer = _progress("chat-a-1", BootPhase.PULLING, ago(minutes=1))
    older = _progress("chat-a-1", BootPhase.INSTALLING, ago(minutes=5))
    state = apply_event(apply_event(a_state(), newer, MIN1), older, MIN1)
    assert state.progress == {"chat-a-1": Progress(BootPhase.PULLING, ago(minutes=1))}
    assert apply_event(a_state(), _progress("embed-a-1", BootPhase.PULLING, NOW), MIN1) == a_state()


def test_boot_progress_is_forgotten_once_the_vm_stops() -> None:
    state = a_state(progress={"chat-a-1": Progress(BootPhase.LOADING, ago(minutes=2))})
    booting = an_instance("chat-a-1", "RUNNING", last_start=ago(minutes=3))
    stopped = an_instance("chat-a-1", "TERMINATED", last_start=ago(minutes=3), last_stop=ago(minutes=1))
    assert plan(MIN1, observed(all_vms(chat_a_1=booting)), state, NOW).next_state.progress == state.progress
    assert plan(MIN1, observed(all_vms(chat_a_1=stopped)), state, NOW).next_state.progress == {}
