"""The real google-cloud-compute clients drive the sandbox's Compute Engine like they would drive GCE."""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from google.cloud import compute_v1

from spotgate.domain import InstanceStatus
from spotgate.sandbox.compute.model import VmEventKind
from spotgate.sandbox.devstack.cloud import SandboxCloud
from tests.sandbox.sandbox_support import as_extended, compute_clients, healthy, wait_until
from tests.sdk import sdk_client

PROJECT = "spotgate-local"
ZONE = "us-central1-b"


def test_lists_the_example_fleet_terminated_with_spot_fields(shared_cloud: SandboxCloud) -> None:
    instances, _ = compute_clients(shared_cloud)
    found = {vm.name: vm for vm in instances.list(project=PROJECT, zone="us-central1-a")}
    assert sorted(found) == ["chat-a-1", "chat-standard"]
    spot = found["chat-a-1"]
    assert spot.status == compute_v1.Instance.Status.TERMINATED.name
    assert spot.scheduling.provisioning_model == compute_v1.Scheduling.ProvisioningModel.SPOT.name
    assert spot.scheduling.instance_termination_action == "STOP"
    assert spot.scheduling.preemptible is True
    assert spot.labels["spotgate-pool"] == "chat"
    assert spot.zone.endswith("/projects/spotgate-local/zones/us-central1-a")
    assert found["chat-standard"].scheduling.provisioning_model == "STANDARD"


@pytest.mark.parametrize(
    "expression",
    [
        pytest.param("labels.spotgate-pool=embed", id="bare"),
        pytest.param('labels.spotgate-pool = "embed"', id="quoted"),
        pytest.param('(labels.spotgate-pool = "embed") AND (status = TERMINATED)', id="conjunction"),
    ],
)
def test_aggregated_list_filters_on_the_pool_label(shared_cloud: SandboxCloud, expression: str) -> None:
    instances, _ = compute_clients(shared_cloud)
    scopes = dict(instances.aggregated_list(request={"project": PROJECT, "filter": expression}))
    names = sorted(vm.name for scoped in scopes.values() for vm in scoped.instances)
    assert names == ["embed-b-1"]
    assert scopes["zones/us-central1-a"].warning.code == "NO_RESULTS_ON_PAGE"


def test_unknown_instance_is_a_not_found_error(shared_cloud: SandboxCloud) -> None:
    instances, _ = compute_clients(shared_cloud)
    with pytest.raises(exceptions.NotFound) as caught:
        instances.get(project=PROJECT, zone=ZONE, instance="no-such-vm")
    assert "The resource 'projects/spotgate-local/zones/us-central1-b/instances/no-such-vm' was not found" in str(
        caught.value
    )
    assert caught.value.errors[0]["reason"] == "notFound"


def test_start_runs_an_engine_on_a_private_loopback_address_and_stop_ends_it(compute_cloud: SandboxCloud) -> None:
    instances, operations = compute_clients(compute_cloud)
    started = instances.start_unary(project=PROJECT, zone=ZONE, instance="chat-b-1")
    done = operations.wait(project=PROJECT, zone=ZONE, operation=started.name)
    vm = instances.get(project=PROJECT, zone=ZONE, instance="chat-b-1")
    ip = vm.network_interfaces[0].network_i_p
    url = f"http://{ip}:8000"
    assert done.status == compute_v1.Operation.Status.DONE
    assert not done.error.errors
    assert vm.status == "RUNNING"
    assert ip.startswith("127.")
    assert ip != "127.0.0.1"
    assert vm.last_start_timestamp
    assert wait_until(lambda: healthy(url))
    answer = sdk_client(base_url=url + "/v1", api_key="x", timeout=10, max_retries=0).chat.completions.create(
        model="llama3", messages=[{"role": "user", "content": "hello"}], max_tokens=4
    )
    assert answer.choices[0].message.content

    stopped = instances.stop_unary(project=PROJECT, zone=ZONE, instance="chat-b-1")
    operations.wait(project=PROJECT, zone=ZONE, operation=stopped.name)
    vm = instances.get(project=PROJECT, zone=ZONE, instance="chat-b-1")
    assert vm.status == "TERMINATED"
    assert vm.last_stop_timestamp
    assert not healthy(url)


def test_start_of_a_running_vm_and_stop_of_a_terminated_one_are_done_at_once(compute_cloud: SandboxCloud) -> None:
    instances, operations = compute_clients(compute_cloud)
    stop = instances.stop_unary(project=PROJECT, zone=ZONE, instance="embed-b-1")
    first = instances.start_unary(project=PROJECT, zone=ZONE, instance="embed-b-1")
    operations.wait(project=PROJECT, zone=ZONE, operation=first.name)
    again = instances.start_unary(project=PROJECT, zone=ZONE, instance="embed-b-1")
    assert stop.status == again.status == compute_v1.Operation.Status.DONE


def test_stockout_fails_the_start_operation_like_gce(compute_cloud: SandboxCloud) -> None:
    instances, operations = compute_clients(compute_cloud)
    compute_cloud.compute.stock_out("us-central1-a", 60)
    started = instances.start_unary(project=PROJECT, zone="us-central1-a", instance="chat-a-1")
    with pytest.raises(exceptions.ServiceUnavailable) as caught:
        as_extended(operations, PROJECT, "us-central1-a", started).result(timeout=10)
    error = caught.value.errors[0]
    info = error.error_details[0].error_info
    assert error.code == "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"
    assert "does not have enough resources available to fulfill the request.  " in error.message
    assert info.metadatas["zonesAvailable"].split(",") == ["us-central1-b", "us-central1-c"]
    assert instances.get(project=PROJECT, zone="us-central1-a", instance="chat-a-1").status == "TERMINATED"


LONG_NOTICE = pytest.mark.parametrize(
    "compute_cloud", [pytest.param({"preempt_notice": 1500}, id="1.5s-notice")], indirect=True
)  # long enough that the next API call surely lands inside the notice, even on a busy machine


@LONG_NOTICE
def test_start_while_stopping_is_refused_and_stop_waits_for_the_stop(compute_cloud: SandboxCloud) -> None:
    instances, operations = compute_clients(compute_cloud)
    started = instances.start_unary(project=PROJECT, zone=ZONE, instance="chat-b-1")
    operations.wait(project=PROJECT, zone=ZONE, operation=started.name)
    compute_cloud.compute.preempt("chat-b-1")
    with pytest.raises(exceptions.BadRequest, match="not ready"):
        instances.start_unary(project=PROJECT, zone=ZONE, instance="chat-b-1")
    stop = instances.stop_unary(project=PROJECT, zone=ZONE, instance="chat-b-1")  # joins the preemption's stop
    done = operations.wait(project=PROJECT, zone=ZONE, operation=stop.name)
    assert done.status == compute_v1.Operation.Status.DONE
    assert instances.get(project=PROJECT, zone=ZONE, instance="chat-b-1").status == "TERMINATED"


def test_preemption_terminates_the_vm_and_logs_a_system_event(compute_cloud: SandboxCloud) -> None:
    instances, operations = compute_clients(compute_cloud)
    seen: list[VmEventKind] = []
    compute_cloud.compute.add_listener(lambda event: seen.append(event.kind))
    started = instances.start_unary(project=PROJECT, zone=ZONE, instance="chat-b-1")
    operations.wait(project=PROJECT, zone=ZONE, operation=started.name)
    compute_cloud.compute.preempt("chat-b-1")
    assert compute_cloud.compute.find("chat-b-1").status is InstanceStatus.STOPPING  # the notice has begun
    assert wait_until(lambda: instances.get(project=PROJECT, zone=ZONE, instance="chat-b-1").status == "TERMINATED")
    vm = instances.get(project=PROJECT, zone=ZONE, instance="chat-b-1")
    methods = [e.method for e in compute_cloud.compute.system_events() if e.kind is VmEventKind.SYSTEM_EVENT]
    assert vm.last_stop_timestamp
    assert methods == ["compute.instances.preempted"]
    assert wait_until(lambda: len(seen) >= 5)  # listeners hear of events on the model's event thread
    assert seen == [
        VmEventKind.RUNNING,
        VmEventKind.PREEMPT_NOTICE,
        VmEventKind.SYSTEM_EVENT,
        VmEventKind.STOPPING,
        VmEventKind.TERMINATED,
    ]


def test_host_maintenance_stops_the_vm_at_once(compute_cloud: SandboxCloud) -> None:
    instances, operations = compute_clients(compute_cloud)
    started = instances.start_unary(project=PROJECT, zone=ZONE, instance="embed-b-1")
    operations.wait(project=PROJECT, zone=ZONE, operation=started.name)
    compute_cloud.compute.maintenance("embed-b-1")
    assert wait_until(lambda: instances.get(project=PROJECT, zone=ZONE, instance="embed-b-1").status == "TERMINATED")
    events = [e for e in compute_cloud.compute.system_events() if e.kind is VmEventKind.SYSTEM_EVENT]
    assert [(e.instance, e.method) for e in events] == [("embed-b-1", "compute.instances.terminateOnHostMaintenance")]
