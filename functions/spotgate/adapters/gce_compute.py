"""``ports.Compute`` over google-cloud-compute: list a pool's VMs, start and stop them, wait on operations.

Two facts about the client library shape this adapter (DESIGN §4):

* ``ExtendedOperation.result()`` polls through an internal ``ZoneOperationsClient`` that ignores
  ``client_options``, so against any endpoint but Google's it would poll the wrong host. We call
  ``start_unary``/``stop_unary`` and wait with our own ``ZoneOperationsClient`` built with the same options.
* ``aggregatedList`` fails as a whole when one zone does not answer, unless ``returnPartialSuccess=true``
  is sent; then the answer lists the zones it could not reach in ``unreachables``. google-cloud-compute
  1.57 has no field for that query parameter, so the listing client's HTTP session appends it to its
  ``aggregated`` GETs (``_PartialSuccess``, a requests transport adapter); that client lists and does
  nothing else.
* A SPOT stockout is not an HTTP error on the ``start`` call: the operation finishes ``DONE`` with
  ``error.errors[0].code = ZONE_RESOURCE_POOL_EXHAUSTED[_WITH_DETAILS]``. We read the operation's errors
  ourselves and raise ``CapacityError`` carrying GCE's ``zonesAvailable`` hint when it sent one.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import requests
from google.api_core import exceptions as gexc
from google.api_core import retry as api_retry
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import compute_v1

from spotgate.adapters.api_errors import translated
from spotgate.domain import Instance, InstanceStatus, ProvisioningModel
from spotgate.errors import (
    CapacityError,
    NotFoundError,
    NotReadyError,
    PermanentError,
    QuotaError,
    RateLimitError,
    SpotgateError,
    UnavailableError,
)

log = logging.getLogger(__name__)

LIST_DEADLINE = timedelta(seconds=60)  # a listing that cannot succeed within this fails the round (retried later)

POOL_LABEL = "spotgate-pool"
# A failed operation's ``error.errors[].code`` -> what it means for us. UNSUPPORTED_OPERATION on a SPOT start is
# GCE reclaiming the capacity while the VM was starting (SkyPilot's finding), so it is a stockout of that zone.
_STOCKOUT = frozenset(
    {"ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", "UNSUPPORTED_OPERATION"}
)
_OPERATION_CODES: dict[str, type[SpotgateError]] = {
    "QUOTA_EXCEEDED": QuotaError,
    "QUOTA_LIMIT": QuotaError,
    "RESOURCE_OPERATION_RATE_EXCEEDED": RateLimitError,
    "RATE_LIMIT_EXCEEDED": RateLimitError,
    "RESOURCE_NOT_READY": NotReadyError,  # still STOPPING
    "RESOURCE_NOT_FOUND": NotFoundError,
    "NOT_FOUND": NotFoundError,
}


class GceCompute:
    """Compute Engine for one project. ``endpoint`` (e.g. the sandbox's URL) implies anonymous credentials."""

    def __init__(
        self,
        project: str,
        *,
        endpoint: str | None = None,
        credentials: Credentials | None = None,
        operation_timeout: timedelta = timedelta(seconds=120),
        list_deadline: timedelta = LIST_DEADLINE,
    ) -> None:
        options = {"api_endpoint": endpoint} if endpoint else None
        creds = credentials or (AnonymousCredentials() if endpoint else None)
        self._project = project
        self._instances = compute_v1.InstancesClient(credentials=creds, client_options=options)
        self._lister = compute_v1.InstancesClient(credentials=creds, client_options=options)
        session: requests.Session = self._lister._transport._session  # type: ignore[attr-defined]
        for scheme in ("http://", "https://"):
            session.mount(scheme, _PartialSuccess())
        self._operations = compute_v1.ZoneOperationsClient(credentials=creds, client_options=options)
        self._timeout = operation_timeout.total_seconds()
        # The client's own retry of a 503 listing runs for up to 600 s, longer than a function may run.
        seconds = list_deadline.total_seconds()
        self._list_retry = api_retry.Retry(
            initial=0.1,
            maximum=5.0,
            multiplier=1.3,
            predicate=api_retry.if_exception_type(gexc.DeadlineExceeded, gexc.ServiceUnavailable),
            timeout=seconds,
        )
        self._list_timeout = seconds

    def list_instances(self, pool: str) -> list[Instance]:
        found = self._aggregated(f'labels.{POOL_LABEL} = "{pool}"', f"list instances of pool {pool}")
        # Filters are evaluated server-side; re-check so a lax server can never hand us another pool's VM.
        return sorted((vm for vm in found if vm.labels.get(POOL_LABEL) == pool), key=lambda vm: vm.name)

    def list_fleet(self) -> dict[str, list[Instance]]:
        """Every VM carrying the pool label, by pool, from one ``aggregatedList`` (a fleet tick's only list)."""
        by_pool: dict[str, list[Instance]] = defaultdict(list)
        for vm in self._aggregated(f"labels.{POOL_LABEL}:*", "list the fleet's instances"):
            if vm.labels.get(POOL_LABEL):
                by_pool[vm.labels[POOL_LABEL]].append(vm)
        return {pool: sorted(vms, key=lambda vm: vm.name) for pool, vms in by_pool.items()}

    def _aggregated(self, label_filter: str, doing: str) -> list[Instance]:
        request = compute_v1.AggregatedListInstancesRequest(project=self._project, filter=label_filter)
        found: list[Instance] = []
        unreachable: list[str] = []
        with translated(doing):
            pages = self._lister.aggregated_list(request=request, retry=self._list_retry, timeout=self._list_timeout)
            for page in pages.pages:
                unreachable.extend(page.unreachables)
                found.extend(to_instance(vm) for scoped in page.items.values() for vm in scoped.instances)
        if unreachable:
            log.warning("zones did not answer the listing: %s", ", ".join(unreachable), extra={"zones": unreachable})
        return found

    def start(self, zone: str, instance: str) -> GceOperation:
        with translated(f"start {instance} in {zone}"):
            operation = self._instances.start_unary(project=self._project, zone=zone, instance=instance)
        return GceOperation(self, zone, instance, operation, f"start {instance} in {zone}")

    def set_preemption_notice(self, zone: str, instance: str, notice: timedelta) -> bool:
        """Give a stopped SPOT VM GCE's early preemption notice; True if its scheduling had to change.

        The pinned Terraform provider (google 6.50.0) has no ``preemption_notice_duration``, so the field is
        set here, through ``instances.setScheduling`` (google-cloud-compute's ``Scheduling`` carries it),
        which GCE accepts only on a TERMINATED VM, i.e. before the start that follows. The call sends the
        VM's current scheduling with the one field changed, so Terraform's fields keep their values (the
        provider does not read this field, so it causes no drift). Idempotent: a VM that already has the
        notice costs one ``instances.get``. Raises what GCE refuses (e.g. ConflictError: not stopped).
        """
        with translated(f"read the scheduling of {instance} in {zone}"):
            vm = self._instances.get(project=self._project, zone=zone, instance=instance)
        scheduling = vm.scheduling
        seconds = int(notice.total_seconds())
        if scheduling.provisioning_model != "SPOT" or _notice_seconds(scheduling) == seconds:
            return False
        updated = compute_v1.Scheduling.deserialize(compute_v1.Scheduling.serialize(scheduling))
        updated.preemption_notice_duration = compute_v1.Duration(seconds=seconds)
        doing = f"set the preemption notice of {instance} in {zone}"
        with translated(doing):
            operation = self._instances.set_scheduling_unary(
                project=self._project, zone=zone, instance=instance, scheduling_resource=updated
            )
        GceOperation(self, zone, instance, operation, doing).wait()
        return True

    def resume(self, zone: str, instance: str) -> GceOperation:
        """Resume a SUSPENDED VM (GCE refuses ``start`` on one)."""
        with translated(f"resume {instance} in {zone}"):
            operation = self._instances.resume_unary(project=self._project, zone=zone, instance=instance)
        return GceOperation(self, zone, instance, operation, f"resume {instance} in {zone}")

    def stop(self, zone: str, instance: str) -> GceOperation:
        with translated(f"stop {instance} in {zone}"):
            operation = self._instances.stop_unary(project=self._project, zone=zone, instance=instance)
        return GceOperation(self, zone, instance, operation, f"stop {instance} in {zone}")

    def wait_operation(self, zone: str, operation: compute_v1.Operation, instance: str) -> None:
        """Poll until DONE (bounded by the operation timeout) and raise what a failed operation says."""
        deadline = time.monotonic() + self._timeout
        while operation.status != compute_v1.Operation.Status.DONE:
            if time.monotonic() >= deadline:
                return  # still running: the next reconcile observes the VM's real status
            operation = self._operations.wait(project=self._project, zone=zone, operation=operation.name)
        raise_for_operation(operation, zone, instance)


class _PartialSuccess(requests.adapters.HTTPAdapter):
    """Sends ``returnPartialSuccess=true`` with every aggregated list (see the module docstring)."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        url = request.url or ""
        if request.method == "GET" and "/aggregated/" in url:
            request.url = f"{url}{'&' if '?' in url else '?'}returnPartialSuccess=true"
        return super().send(request, *args, **kwargs)


class GceOperation:
    """A zone operation we issued; ``wait()`` polls it through our own ZoneOperationsClient."""

    def __init__(
        self, compute: GceCompute, zone: str, instance: str, operation: compute_v1.Operation, doing: str
    ) -> None:
        self._compute = compute
        self._zone = zone
        self._instance = instance
        self._operation = operation
        self._doing = doing

    def wait(self) -> None:
        with translated(self._doing):
            self._compute.wait_operation(self._zone, self._operation, self._instance)


def raise_for_operation(operation: compute_v1.Operation, zone: str, instance: str) -> None:
    """Raise the spotgate error a finished operation's ``error`` describes; return if it succeeded."""
    errors = list(operation.error.errors) if operation.error else []
    if not errors:
        return
    message = f"{instance} in {zone}: " + "; ".join(f"{e.code}: {e.message}" for e in errors)
    for error in errors:  # the first code we know decides; GCE lists the cause first
        if error.code in _STOCKOUT:
            raise CapacityError(message, zone=zone, code=error.code, zones_available=zones_available(error))
        if error.code in _OPERATION_CODES:
            raise _OPERATION_CODES[error.code](message)
    if operation.http_error_status_code and operation.http_error_status_code >= 500:
        raise UnavailableError(message)
    raise PermanentError(message)


def zones_available(error: compute_v1.Errors) -> tuple[str, ...]:
    """Zones GCE named as still having capacity (``errorInfo.metadatas["zonesAvailable"]``), if any."""
    for detail in error.error_details:
        hint = detail.error_info.metadatas.get("zonesAvailable", "") if detail.error_info else ""
        if hint:
            return tuple(z.strip().rsplit("/", 1)[-1] for z in hint.split(",") if z.strip())
    return ()


def to_instance(vm: compute_v1.Instance) -> Instance:
    """Convert the client's ``Instance`` proto into the domain value (short zone name, parsed times)."""
    nics = list(vm.network_interfaces)
    return Instance(
        name=vm.name,
        zone=vm.zone.rsplit("/", 1)[-1],
        status=InstanceStatus(vm.status),
        provisioning_model=ProvisioningModel(vm.scheduling.provisioning_model or "STANDARD"),
        network_ip=nics[0].network_i_p if nics and nics[0].network_i_p else None,
        instance_id=str(vm.id) if vm.id else "",
        labels=dict(vm.labels),
        last_start=_timestamp(vm.last_start_timestamp),
        last_stop=_timestamp(vm.last_stop_timestamp),
    )


def _notice_seconds(scheduling: compute_v1.Scheduling) -> int | None:
    if "preemption_notice_duration" not in scheduling:
        return None
    return int(scheduling.preemption_notice_duration.seconds) or None


def _timestamp(value: str) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
