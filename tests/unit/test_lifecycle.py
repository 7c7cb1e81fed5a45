"""Where a VM stands during a boot: when its boot began, and when it is judged stuck (issue 9, defects 1, 12)."""

from __future__ import annotations

from datetime import datetime

import pytest

from spotgate.core.lifecycle import Phase, boot_started, classify
from spotgate.core.planner import plan
from spotgate.core.state_updates import record_start_issued
from spotgate.domain import Instance, PoolState, StartInstance, StopInstance
from tests.unit.builders import NOW, a_pool_spec, a_state, ago, all_vms, an_instance, later, observed

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
