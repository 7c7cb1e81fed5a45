"""A Compute Engine VM as the control plane sees it: one GPU backend of a pool."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class InstanceStatus(enum.StrEnum):
    """``Instance.status`` values exactly as the Compute Engine API spells them."""

    PROVISIONING = "PROVISIONING"
    STAGING = "STAGING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    SUSPENDING = "SUSPENDING"
    SUSPENDED = "SUSPENDED"
    TERMINATED = "TERMINATED"
    REPAIRING = "REPAIRING"
    DEPROVISIONING = "DEPROVISIONING"

    @property
    def is_live(self) -> bool:
        """True while the VM is booting or running (it costs money and may serve soon)."""
        return self in (InstanceStatus.PROVISIONING, InstanceStatus.STAGING, InstanceStatus.RUNNING)

    @property
    def is_stopped(self) -> bool:
        """True when a ``start`` call is what it takes to bring the VM back."""
        return self in (InstanceStatus.TERMINATED, InstanceStatus.STOPPED, InstanceStatus.SUSPENDED)


class ProvisioningModel(enum.StrEnum):
    """``scheduling.provisioningModel``: SPOT is cheap and reclaimable, STANDARD is on-demand."""

    SPOT = "SPOT"
    STANDARD = "STANDARD"


@dataclass(frozen=True, slots=True)
class Instance:
    """An observed VM. ``network_ip`` is its private address (``networkInterfaces[0].networkIP``)."""

    name: str
    zone: str
    status: InstanceStatus
    provisioning_model: ProvisioningModel
    network_ip: str | None = None
    instance_id: str = ""
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=True)
    last_start: datetime | None = None
    last_stop: datetime | None = None
