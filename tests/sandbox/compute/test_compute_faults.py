"""The sandbox answers like GCE under pressure, and the real client plus spotgate's adapter classify it right.

GCE's ``403 rateLimitExceeded``/``403 quotaExceeded``/``400 resourceNotReady`` differ only in the reason code
of the JSON body; failed start operations carry codes such as ``QUOTA_EXCEEDED``. A restarted VM keeps its
previous ``lastStartTimestamp`` until it is RUNNING again.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from google.api_core import exceptions
from google.cloud import compute_v1

from spotgate.adapters.gce_compute import GceCompute
from spotgate.errors import (
    CapacityError,
    NotReadyError,
    QuotaError,
    RateLimitError,
    SpotgateError,
    UnavailableError,
)
from spotgate.sandbox.devstack.cloud import SandboxCloud
from tests.sandbox.sandbox_support import compute_clients, wait_until

PROJECT = "spotgate-local"
ZONE = "us-central1-b"
DONE = compute_v1.Operation.Status.DONE


def inject(cloud: SandboxCloud, verb: str, reason: str, times: int = 1) -> None:
    answer = requests.post(
        f"{cloud.compute_url}/sandbox/fault", json={"verb": verb, "reason": reason, "times": times}, timeout=5
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("reason", "status", "expected"),
    [
        pytest.param("rateLimitExceeded", 403, RateLimitError, id="403-rateLimitExceeded"),
        pytest.param("quotaExceeded", 403, QuotaError, id="403-quotaExceeded"),
        pytest.param("resourceNotReady", 400, NotReadyError, id="400-resourceNotReady"),
        pytest.param("backendError", 503, UnavailableError, id="503-backendError"),
    ],
)
def test_injected_refusals_reach_the_real_client_with_gces_reason(
    compute_cloud: SandboxCloud, reason: str, status: int, expected: type[SpotgateError]
) -> None:
    instances, _ = compute_clients(compute_cloud)
    inject(compute_cloud, "start", reason)
    with pytest.raises(exceptions.GoogleAPICallError) as raw:
        instances.start_unary(project=PROJECT, zone=ZONE, instance="chat-b-1")
    assert raw.value.code == status
    assert raw.value.errors[0]["reason"] == reason

    inject(compute_cloud, "start", reason)
    with pytest.raises(expected):
        GceCompute(PROJECT, endpoint=compute_cloud.compute_url).start(ZONE, "chat-b-1")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        pytest.param("QUOTA_EXCEEDED", QuotaError, id="QUOTA_EXCEEDED"),
        pytest.param("UNSUPPORTED_OPERATION", CapacityError, id="UNSUPPORTED_OPERATION"),
        pytest.param("RESOURCE_OPERATION_RATE_EXCEEDED", RateLimitError, id="operation-rate"),
    ],
)
def test_a_start_whose_operation_fails_raises_by_its_code(
    compute_cloud: SandboxCloud, code: str, expected: type[SpotgateError]
) -> None:
    inject(compute_cloud, "start", code)
    operation = GceCompute(PROJECT, endpoint=compute_cloud.compute_url).start(ZONE, "chat-b-1")
    with pytest.raises(expected):
        operation.wait()
    assert compute_cloud.compute.find("chat-b-1").status == "TERMINATED"


def test_a_list_refusal_is_classified_too(compute_cloud: SandboxCloud) -> None:
    inject(compute_cloud, "list", "rateLimitExceeded")
    with pytest.raises(RateLimitError):
        GceCompute(PROJECT, endpoint=compute_cloud.compute_url).list_instances("chat")


def test_an_unknown_fault_is_refused_with_what_can_be_injected(compute_cloud: SandboxCloud) -> None:
    answer = requests.post(
        f"{compute_cloud.compute_url}/sandbox/fault", json={"verb": "start", "reason": "meteorStrike"}, timeout=5
    )
    assert answer.status_code == 400
    assert "rateLimitExceeded" in answer.json()["error"]["message"]


SLOW_BOOT = pytest.mark.parametrize(
    "compute_cloud", [pytest.param({"boot_delay": 3000}, id="3s-boot")], indirect=True
)  # long enough that a get lands while the VM is PROVISIONING/STAGING, even on a busy machine


@SLOW_BOOT
def test_a_restarted_vm_keeps_its_previous_last_start_until_it_is_running(compute_cloud: SandboxCloud) -> None:
    instances, operations = compute_clients(compute_cloud)

    def cycle(verb: str) -> None:
        op = getattr(instances, f"{verb}_unary")(project=PROJECT, zone=ZONE, instance="chat-b-1")
        assert wait_until(
            lambda: operations.wait(project=PROJECT, zone=ZONE, operation=op.name).status == DONE, timeout=30
        )

    cycle("start")
    first = instances.get(project=PROJECT, zone=ZONE, instance="chat-b-1").last_start_timestamp
    cycle("stop")
    instances.start_unary(project=PROJECT, zone=ZONE, instance="chat-b-1")
    booting = instances.get(project=PROJECT, zone=ZONE, instance="chat-b-1")
    assert booting.status in ("PROVISIONING", "STAGING")
    assert booting.last_start_timestamp == first
    assert wait_until(
        lambda: instances.get(project=PROJECT, zone=ZONE, instance="chat-b-1").status == "RUNNING", timeout=30
    )
    assert instances.get(project=PROJECT, zone=ZONE, instance="chat-b-1").last_start_timestamp > first


def test_the_fleet_listing_survives_an_unreachable_zone(compute_cloud: SandboxCloud) -> None:
    instances, _ = compute_clients(compute_cloud)
    answer = requests.post(
        f"{compute_cloud.compute_url}/sandbox/unreachable", json={"zone": "us-central1-a"}, timeout=5
    )
    assert answer.status_code == 200, answer.text
    with pytest.raises(exceptions.ServiceUnavailable):  # GCE without returnPartialSuccess: all or nothing
        list(instances.aggregated_list(request={"project": PROJECT}, retry=None))
    fleet = GceCompute(PROJECT, endpoint=compute_cloud.compute_url).list_fleet()
    names = sorted(vm.name for vms in fleet.values() for vm in vms)
    assert names
    assert all(vm.zone != "us-central1-a" for vms in fleet.values() for vm in vms)
    assert set(fleet) <= {"chat", "embed"}


def test_the_fleet_listing_groups_every_labelled_vm_by_pool(compute_cloud: SandboxCloud) -> None:
    compute = GceCompute(PROJECT, endpoint=compute_cloud.compute_url)
    fleet = compute.list_fleet()
    assert fleet["chat"] == compute.list_instances("chat")
    assert fleet["embed"] == compute.list_instances("embed")


def test_a_suspended_vm_comes_back_through_resume_not_start(compute_cloud: SandboxCloud) -> None:
    compute = GceCompute(PROJECT, endpoint=compute_cloud.compute_url)
    compute.start(ZONE, "chat-b-1").wait()
    assert wait_until(lambda: compute_cloud.compute.find("chat-b-1").status == "RUNNING", timeout=30)
    compute_cloud.compute.suspend("chat-b-1")
    assert wait_until(lambda: compute_cloud.compute.find("chat-b-1").status == "SUSPENDED", timeout=30)
    compute.start(ZONE, "chat-b-1").wait()  # GCE: start does not resume a suspended VM
    assert compute_cloud.compute.find("chat-b-1").status == "SUSPENDED"
    compute.resume(ZONE, "chat-b-1").wait()
    assert wait_until(lambda: compute_cloud.compute.find("chat-b-1").status == "RUNNING", timeout=30)


def test_a_listing_that_keeps_failing_gives_up_within_its_deadline(compute_cloud: SandboxCloud) -> None:
    inject(compute_cloud, "list", "backendError", times=1000)  # GCE answering 503 for good
    compute = GceCompute(PROJECT, endpoint=compute_cloud.compute_url, list_deadline=timedelta(seconds=1))
    with pytest.raises(UnavailableError):  # not the client's default 600 s of retries: a tick must end
        compute.list_fleet()
