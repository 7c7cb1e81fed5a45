"""``spare``: extra SPOT VMs while requests are in flight, so a preemption leaves a ready VM."""

from __future__ import annotations

import pytest

from spotgate.core.planner import plan
from spotgate.domain import Activity, StartInstance, StopInstance
from tests.unit.builders import (
    NOW,
    a_pool_spec,
    a_state,
    ago,
    all_vms,
    an_activity,
    an_instance,
    observed,
    ready_notice,
)

RUNNING_A = an_instance("chat-a-1", "RUNNING", last_start=ago(hours=1))
RUNNING_B = an_instance("chat-b-1", "RUNNING", last_start=ago(hours=1))
ONE_READY = a_state(notices={"chat-a-1": ready_notice()})
TWO_READY = a_state(notices={"chat-a-1": ready_notice(), "chat-b-1": ready_notice()})
BUSY = an_activity(inflight=2, last_request=ago(seconds=5), backends={"chat-a-1": ago(seconds=5)})
QUIET = an_activity(inflight=0, last_request=ago(minutes=5), backends={"chat-a-1": ago(minutes=5)})
STALE_BUSY = an_activity(inflight=2, last_request=ago(minutes=5), updated_at=ago(minutes=5))


def starts_and_stops(
    spare: int, vms: dict[str, object], state: object, activity: Activity
) -> tuple[list[str], list[str]]:
    spec = a_pool_spec(min_ready=1, max_ready=1, spare=spare)
    decided = plan(spec, observed(all_vms(**vms), activity=activity), state, NOW)  # type: ignore[arg-type]
    starts = [a.instance for a in decided.actions if isinstance(a, StartInstance)]
    stops = [a.instance for a in decided.actions if isinstance(a, StopInstance)]
    return starts, stops


@pytest.mark.parametrize(
    ("spare", "vms", "state", "activity", "expected"),
    [
        pytest.param(0, {"chat_a_1": RUNNING_A}, ONE_READY, BUSY, ([], []), id="no_spare_by_default"),
        pytest.param(1, {"chat_a_1": RUNNING_A}, ONE_READY, BUSY, (["chat-b-1"], []), id="busy_pool_gets_its_spare"),
        pytest.param(1, {"chat_a_1": RUNNING_A}, ONE_READY, QUIET, ([], []), id="quiet_pool_no_spare"),
        pytest.param(1, {"chat_a_1": RUNNING_A}, ONE_READY, STALE_BUSY, ([], []), id="stale_activity_is_not_busy"),
        pytest.param(
            1, {"chat_a_1": RUNNING_A, "chat_b_1": RUNNING_B}, TWO_READY, BUSY, ([], []), id="busy_keeps_the_spare"
        ),
        pytest.param(
            1,
            {"chat_a_1": RUNNING_A, "chat_b_1": RUNNING_B},
            TWO_READY,
            QUIET,
            ([], ["chat-b-1"]),
            id="quiet_lets_it_go",
        ),
    ],
)
def test_spare(
    spare: int, vms: dict[str, object], state: object, activity: Activity, expected: tuple[list[str], list[str]]
) -> None:
    assert starts_and_stops(spare, vms, state, activity) == expected


def test_a_spare_start_says_why() -> None:
    spec = a_pool_spec(min_ready=1, max_ready=1, spare=1)
    decided = plan(spec, observed(all_vms(chat_a_1=RUNNING_A), activity=BUSY), ONE_READY, NOW)
    (start,) = [a for a in decided.actions if isinstance(a, StartInstance)]
    assert "spare 1 while 2 request(s) are in flight" in start.reason
