"""GCE's JSON for the sandbox's instances, operations, lists and errors, exactly as the REST clients parse it.

Shapes follow the captured samples in the design reference: full-URL ``zone``/``machineType``/``selfLink``,
decimal-string ids, RFC 3339 timestamps with an offset and milliseconds, ``scheduling`` as Terraform sets it
for the pool's VMs, and no ``accessConfigs`` (the VMs have private addresses only).

A failed operation carries ``error.errors[]`` *and* ``httpErrorStatusCode``/``httpErrorMessage``, because
the Python client raises only when both are set. A SPOT stockout is::

    "error": {"errors": [{
        "code": "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
        "message": "The zone 'projects/P/zones/Z' does not have enough resources available to fulfill
                    the request.  '(resource type:compute)'.",
        "errorDetails": [
            {"errorInfo": {"reason": "resource_availability", "domain": "compute.googleapis.com",
                           "metadatas": {"zone": Z, "vmType": "g2-standard-8", "attachment": "nvidia-l4 1",
                                         "zonesAvailable": "us-central1-b,us-central1-c"}}},
            {"help": {"links": [...]}}]}]},
    "httpErrorStatusCode": 503, "httpErrorMessage": "SERVICE UNAVAILABLE"

so ``exc.errors[0].error_details[0].error_info.metadatas["zonesAvailable"]`` is a comma-separated list of
zones of the project that are not stocked out (empty when none are).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from spotgate.domain import ProvisioningModel
from spotgate.sandbox.compute.records import ACCELERATOR, MACHINE_TYPE, Operation, Vm

API = "https://www.googleapis.com/compute/v1"


def timestamp(value: datetime | None) -> str | None:
    return value.isoformat(timespec="milliseconds") if value else None


def zone_url(project: str, zone: str) -> str:
    return f"{API}/projects/{project}/zones/{zone}"


def instance_json(project: str, vm: Vm) -> dict[str, Any]:
    zone = zone_url(project, vm.zone)
    region = vm.zone.rsplit("-", 1)[0]
    spot = vm.provisioning_model is ProvisioningModel.SPOT
    body: dict[str, Any] = {
        "kind": "compute#instance",
        "id": vm.instance_id,
        "creationTimestamp": timestamp(vm.created),
        "name": vm.name,
        "machineType": f"{zone}/machineTypes/{MACHINE_TYPE}",
        "status": str(vm.status),
        "zone": zone,
        "networkInterfaces": [
            {
                "kind": "compute#networkInterface",
                "network": f"{API}/projects/{project}/global/networks/spotgate",
                "subnetwork": f"{API}/projects/{project}/regions/{region}/subnetworks/spotgate-{region}",
                "networkIP": vm.network_ip,
                "name": "nic0",
                "stackType": "IPV4_ONLY",
            }
        ],
        "guestAccelerators": [{"acceleratorType": f"{zone}/acceleratorTypes/{ACCELERATOR}", "acceleratorCount": 1}],
        "selfLink": f"{zone}/instances/{vm.name}",
        "scheduling": {
            "onHostMaintenance": "TERMINATE",
            "automaticRestart": False,
            "preemptible": spot,
            "provisioningModel": str(vm.provisioning_model),
            **({"instanceTerminationAction": "STOP"} if spot else {}),
            **_notice(vm),
        },
        "labels": dict(vm.labels),
        "labelFingerprint": vm.label_fingerprint,
        "startRestricted": False,
        "deletionProtection": False,
    }
    for key, value in (("lastStartTimestamp", vm.last_start), ("lastStopTimestamp", vm.last_stop)):
        if value is not None:
            body[key] = timestamp(value)
    return body


def operation_json(project: str, op: Operation) -> dict[str, Any]:
    zone = zone_url(project, op.zone)
    body: dict[str, Any] = {
        "kind": "compute#operation",
        "id": op.id,
        "name": op.name,
        "zone": zone,
        "operationType": op.kind,
        "targetLink": f"{zone}/instances/{op.target}",
        "targetId": op.target_id,
        "status": op.status,
        "user": op.user,
        "progress": op.progress,
        "insertTime": timestamp(op.inserted),
        "selfLink": f"{zone}/operations/{op.name}",
    }
    if op.started:
        body["startTime"] = timestamp(op.started)
    if op.ended:
        body["endTime"] = timestamp(op.ended)
    if op.status_message:
        body["statusMessage"] = op.status_message
    if op.failure is not None:
        error: dict[str, Any] = {"code": op.failure.code, "message": op.failure.message}
        if op.failure.details:
            error["errorDetails"] = list(op.failure.details)
        body["error"] = {"errors": [error]}
        body["httpErrorStatusCode"] = op.failure.http_status
        body["httpErrorMessage"] = op.failure.http_message
    return body


def instance_list_json(project: str, zone: str, vms: list[Vm]) -> dict[str, Any]:
    return {
        "kind": "compute#instanceList",
        "id": f"projects/{project}/zones/{zone}/instances",
        "items": [instance_json(project, vm) for vm in vms],
        "selfLink": f"{zone_url(project, zone)}/instances",
    }


def aggregated_json(
    project: str, zones: tuple[str, ...], vms: list[Vm], unreachable: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Every zone as a scope; empty ones carry GCE's NO_RESULTS_ON_PAGE warning instead of instances.

    Zones in ``unreachable`` are left out and named in ``unreachables`` (a ``returnPartialSuccess`` answer).
    """
    items: dict[str, Any] = {}
    for zone in (z for z in zones if z not in unreachable):
        scope = f"zones/{zone}"
        found = [instance_json(project, vm) for vm in vms if vm.zone == zone]
        if found:
            items[scope] = {"instances": found}
        else:
            warning = {
                "code": "NO_RESULTS_ON_PAGE",
                "message": f"No results for the scope '{scope}'.",
                "data": [{"key": "scope", "value": scope}],
            }
            items[scope] = {"warning": warning}
    body: dict[str, Any] = {
        "kind": "compute#instanceAggregatedList",
        "id": f"projects/{project}/aggregated/instances",
        "items": items,
        "selfLink": f"{API}/projects/{project}/aggregated/instances",
    }
    if unreachable:
        body["unreachables"] = [f"zones/{zone}" for zone in sorted(unreachable)]
    return body


def error_json(code: int, message: str, reason: str, domain: str = "global") -> dict[str, Any]:
    """GCE's synchronous error envelope (what ``from_http_response`` reads); the reason is machine-readable."""
    return {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
        }
    }


def _notice(vm: Vm) -> dict[str, Any]:
    """``preemptionNoticeDuration`` as GCE renders a ``Duration``: seconds as a decimal string."""
    if vm.preemption_notice is None:
        return {}
    return {"preemptionNoticeDuration": {"seconds": str(vm.preemption_notice)}}
