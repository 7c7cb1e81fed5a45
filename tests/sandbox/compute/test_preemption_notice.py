"""GCE's early preemption notice in the sandbox, driven through the production Compute adapter.

``GceCompute.set_preemption_notice`` sends ``instances.setScheduling`` with ``preemptionNoticeDuration``
(google-cloud-compute's ``Scheduling`` field), which GCE accepts only on a stopped VM; a preempted SPOT VM
with the notice is told first (metadata ``instance/preempted``: the PREEMPT_NOTICE event) and keeps RUNNING
and serving for the notice, then gets the usual ACPI soft-off and 30 s.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from spotgate.adapters.gce_compute import GceCompute
from spotgate.domain import InstanceStatus
from spotgate.errors import NotReadyError
from spotgate.sandbox.compute.model import VmEventKind
from spotgate.sandbox.devstack.cloud import SandboxCloud
from tests.sandbox.sandbox_support import compute_clients, wait_until
from tests.sdk import sdk_client

PROJECT = "spotgate-local"
ZONE = "us-central1-b"
HOUR = timedelta(hours=1)  # 3.6 s at the tests' 1000x: the test ends the notice itself, with a stop


def started(cloud: SandboxCloud, name: str, notice: timedelta | None) -> GceCompute:
    compute = GceCompute(PROJECT, endpoint=cloud.compute_url)
    if notice is not None:
        compute.set_preemption_notice(ZONE, name, notice)
    compute.start(ZONE, name).wait()
    return compute


def since_notice(seen: list[VmEventKind]) -> list[VmEventKind]:
    """The events from the preemption notice on: on a loaded machine the start's own RUNNING event can reach
    a listener added after ``start().wait()`` returned, which is not what these tests are about."""
    return seen[seen.index(VmEventKind.PREEMPT_NOTICE) :] if VmEventKind.PREEMPT_NOTICE in seen else []


def test_the_notice_is_set_once_on_a_stopped_spot_vm_and_refused_on_a_running_one(compute_cloud: SandboxCloud) -> None:
    compute = GceCompute(PROJECT, endpoint=compute_cloud.compute_url)
    instances, _ = compute_clients(compute_cloud)

    first = compute.set_preemption_notice(ZONE, "chat-b-1", timedelta(seconds=120))
    again = compute.set_preemption_notice(ZONE, "chat-b-1", timedelta(seconds=120))
    standard = compute.set_preemption_notice("us-central1-a", "chat-standard", timedelta(seconds=120))
    scheduling = instances.get(project=PROJECT, zone=ZONE, instance="chat-b-1").scheduling
    compute.start(ZONE, "chat-b-1").wait()

    assert (first, again, standard) == (True, False, False)
    assert scheduling.preemption_notice_duration.seconds == 120
    assert scheduling.provisioning_model == "SPOT"  # the rest of Terraform's scheduling is kept
    assert scheduling.instance_termination_action == "STOP"
    with pytest.raises(NotReadyError):
        compute.set_preemption_notice(ZONE, "chat-b-1", timedelta(seconds=60))


def test_a_vm_with_the_notice_keeps_running_and_serving_after_it_is_told(compute_cloud: SandboxCloud) -> None:
    started(compute_cloud, "chat-b-1", HOUR)
    seen: list[VmEventKind] = []
    compute_cloud.compute.add_listener(lambda event: seen.append(event.kind))

    compute_cloud.compute.preempt("chat-b-1")
    during = compute_cloud.compute.find("chat-b-1")
    client = sdk_client(base_url=f"{during.engine_url}/v1", api_key="x", max_retries=0, timeout=10)
    answer = client.chat.completions.create(model="llama3", messages=[{"role": "user", "content": "hi"}], max_tokens=4)

    assert during.status is InstanceStatus.RUNNING
    assert answer.choices[0].message.content
    with pytest.raises(NotReadyError, match="notice"):
        compute_cloud.compute.preempt("chat-b-1")  # GCE preempts a VM once
    compute_cloud.compute.stop(ZONE, "chat-b-1", "test")  # a stop during the notice wins
    assert wait_until(lambda: compute_cloud.compute.find("chat-b-1").status is InstanceStatus.TERMINATED)
    assert wait_until(lambda: len(since_notice(seen)) >= 4)
    assert since_notice(seen)[:2] == [VmEventKind.PREEMPT_NOTICE, VmEventKind.SYSTEM_EVENT]
    assert since_notice(seen)[2:] == [VmEventKind.STOPPING, VmEventKind.TERMINATED]


def test_after_the_notice_comes_the_soft_off_then_termination(compute_cloud: SandboxCloud) -> None:
    started(compute_cloud, "chat-b-1", timedelta(seconds=100))  # 0.1 s here
    seen: list[VmEventKind] = []
    compute_cloud.compute.add_listener(lambda event: seen.append(event.kind))

    compute_cloud.compute.preempt("chat-b-1")

    assert wait_until(lambda: compute_cloud.compute.find("chat-b-1").status is InstanceStatus.TERMINATED)
    assert wait_until(lambda: len(since_notice(seen)) >= 4)
    assert since_notice(seen) == [
        VmEventKind.PREEMPT_NOTICE,
        VmEventKind.SYSTEM_EVENT,
        VmEventKind.STOPPING,
        VmEventKind.TERMINATED,
    ]


def test_without_the_notice_a_preemption_soft_offs_at_once(compute_cloud: SandboxCloud) -> None:
    started(compute_cloud, "chat-b-1", None)
    compute_cloud.compute.preempt("chat-b-1")
    assert compute_cloud.compute.find("chat-b-1").status is InstanceStatus.STOPPING
