"""The records the sandbox's Compute Engine keeps (a VM, a zone operation) and the timings it runs on.

The model (``compute.model``) mutates these under its lock and hands out copies; the REST app (``compute.api``)
renders the copies as GCE JSON. Ids are derived from names (stable across runs) and look like GCE's:
decimal uint64 strings for ``id``, ``operation-<ms>-<hex>-<hex>-<hex>`` for operation names.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from spotgate.domain import InstanceStatus, ProvisioningModel
from spotgate.fleet import EngineSpec, FleetConfig, VmSpec

POOL_LABEL = "spotgate-pool"
MACHINE_TYPE = "g2-standard-8"  # one NVIDIA L4, the GPU the example fleet prices
ACCELERATOR = "nvidia-l4"


@dataclass(slots=True)
class Vm:
    """One instance's state. ``generation`` changes on every start/stop/preempt to cancel stale timers."""

    name: str
    zone: str
    pool: str
    instance_id: str
    provisioning_model: ProvisioningModel
    network_ip: str
    engine_port: int
    health_path: str
    labels: dict[str, str]
    created: datetime
    status: InstanceStatus = InstanceStatus.TERMINATED
    last_start: datetime | None = None
    last_stop: datetime | None = None
    engine_url: str | None = None
    generation: int = 0
    preemption_notice: int | None = None  # scheduling.preemptionNoticeDuration, GCE seconds (setScheduling)
    under_notice: bool = False  # told of its preemption, still RUNNING until the notice ends

    def copy(self) -> Vm:
        return copy.deepcopy(self)

    @property
    def label_fingerprint(self) -> str:
        text = ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return base64.b64encode(hashlib.sha256(text.encode()).digest()[:8]).decode()


def new_vm(project: str, pool: str, spec: VmSpec, engine: EngineSpec, *, network_ip: str, now: datetime) -> Vm:
    """A TERMINATED VM as Terraform would have left it (created, never started by spotgate)."""
    return Vm(
        name=spec.name,
        zone=spec.zone,
        pool=pool,
        instance_id=decimal_id(f"{project}/{spec.zone}/{spec.name}"),
        provisioning_model=spec.provisioning_model,
        network_ip=network_ip,
        engine_port=engine.port,
        health_path=engine.health_path,
        labels={POOL_LABEL: pool, "goog-terraform-provisioned": "true"},
        created=now,
    )


@dataclass(frozen=True, slots=True)
class OperationFailure:
    """A failed operation's ``error.errors[0]`` plus the HTTP status GCE reports alongside it."""

    code: str
    message: str
    http_status: int
    http_message: str
    details: tuple[dict[str, object], ...] = ()

    @classmethod
    def stockout(cls, project: str, zone: str, zones_available: tuple[str, ...]) -> OperationFailure:
        """SPOT stockout, with the zones that still have stock in an ``errorInfo`` detail."""
        info = {
            "reason": "resource_availability",
            "domain": "compute.googleapis.com",
            "metadatas": {
                "zone": zone,
                "vmType": MACHINE_TYPE,
                "attachment": f"{ACCELERATOR} 1",
                "zonesAvailable": ",".join(zones_available),
            },
        }
        links = [
            {
                "description": "Troubleshooting documentation",
                "url": "https://cloud.google.com/compute/docs/resource-error",
            }
        ]
        message = (
            f"The zone 'projects/{project}/zones/{zone}' does not have enough resources available to fulfill "
            "the request.  '(resource type:compute)'."
        )
        return cls(
            code="ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
            message=message,
            http_status=503,
            http_message="SERVICE UNAVAILABLE",
            details=({"errorInfo": info}, {"help": {"links": links}}),
        )


@dataclass(slots=True)
class Operation:
    """A zone operation: PENDING -> RUNNING -> DONE, possibly with a failure."""

    name: str
    id: str
    zone: str
    kind: str  # operationType: "start", "stop", or a system event's method name
    target: str
    target_id: str
    user: str
    inserted: datetime
    started: datetime | None = None
    ended: datetime | None = None
    status: str = "PENDING"
    status_message: str | None = None
    failure: OperationFailure | None = field(default=None)

    @property
    def done(self) -> bool:
        return self.status == "DONE"

    @property
    def progress(self) -> int:
        return {"PENDING": 0, "RUNNING": 50, "DONE": 100}[self.status]

    def begin(self, now: datetime) -> None:
        if self.status == "PENDING":
            self.status, self.started = "RUNNING", now

    def finish(self, now: datetime) -> None:
        if not self.done:
            self.started = self.started or now
            self.status, self.ended = "DONE", now

    def copy(self) -> Operation:
        return copy.copy(self)


def new_operation(project: str, kind: str, vm: Vm, user: str, now: datetime, *, system: bool = False) -> Operation:
    """A fresh PENDING operation on ``vm``; system events get GCE's ``systemevent-`` names."""
    millis = int(now.timestamp() * 1000)
    prefix = "systemevent" if system else "operation"
    name = f"{prefix}-{millis}-{secrets.token_hex(7)[:13]}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"
    return Operation(
        name=name,
        id=decimal_id(f"{project}/{name}"),
        zone=vm.zone,
        kind=kind,
        target=vm.name,
        target_id=vm.instance_id,
        user=user,
        inserted=now,
    )


def decimal_id(seed: str) -> str:
    """A 19-digit decimal id, stable for a seed, shaped like GCE's uint64 ids."""
    value = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big")
    return str(10**18 + value % (9 * 10**18))


@dataclass(frozen=True, slots=True)
class Timing:
    """Real-second delays (the fleet's simulated delays divided by its speedup)."""

    boot: float
    stop: float
    preempt_notice: float
    stockout_failure: float
    speedup: float = 1.0

    @classmethod
    def of(cls, fleet: FleetConfig) -> Timing:
        spec = fleet.sandbox
        boot = spec.boot_delay.total_seconds() / spec.speedup
        return cls(
            boot=boot,
            stop=spec.stop_delay.total_seconds() / spec.speedup,
            preempt_notice=spec.preempt_notice.total_seconds() / spec.speedup,
            stockout_failure=min(boot / 4, 2.0),
            speedup=spec.speedup,
        )
