"""Inbound events after parsing, and the audit record of each control-plane decision."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class ComputeEventKind(enum.StrEnum):
    """The five Compute Engine system events the log sink forwards (``protoPayload.methodName``)."""

    PREEMPTED = "compute.instances.preempted"
    HOST_ERROR = "compute.instances.hostError"
    TERMINATE_ON_HOST_MAINTENANCE = "compute.instances.terminateOnHostMaintenance"
    GUEST_TERMINATE = "compute.instances.guestTerminate"
    AUTOMATIC_RESTART = "compute.instances.automaticRestart"


class ControlKind(enum.StrEnum):
    """spotgate's own control messages (``{"v": 1, "kind": …}``)."""

    TICK = "tick"
    READY = "ready"
    DRAINING = "draining"
    WAKE = "wake"
    SLEEP = "sleep"
    PROGRESS = "progress"


class BootPhase(enum.StrEnum):
    """A step of a VM's boot that the agent reports as it begins (``{"kind": "progress", "phase": …}``).

    A first boot installs drivers, copies weights and pulls an image for many minutes; each report is proof of
    progress, so ``boot_timeout`` measures the time since the last one, not the whole boot.
    """

    INSTALLING = "installing"  # packages and the GPU driver (first boot)
    COPYING_WEIGHTS = "copying_weights"  # model weights from the bucket to the boot disk (resumable)
    PULLING = "pulling"  # the engine's container image
    LOADING = "loading"  # the engine is starting and loading the model


@dataclass(frozen=True, slots=True)
class Envelope:
    """CloudEvent / Pub/Sub metadata of a delivery, kept for logs and dedupe."""

    event_id: str
    source: str
    published_at: datetime | None
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ComputeEvent:
    """A system event on one instance, parsed from an audit ``LogEntry``."""

    kind: ComputeEventKind
    project: str
    zone: str
    instance: str
    at: datetime
    instance_id: str = ""
    envelope: Envelope | None = None


@dataclass(frozen=True, slots=True)
class ControlMessage:
    """A control message. ``pool`` is None only for a fleet-wide ``tick``.

    ``until`` is set for ``sleep``/``wake`` overrides; a ``wake`` without ``until`` is the gateway's
    "a request is waiting" signal. ``phase`` is set for ``progress`` only.
    """

    kind: ControlKind
    at: datetime
    pool: str | None = None
    instance: str | None = None
    zone: str | None = None
    until: datetime | None = None
    envelope: Envelope | None = None
    phase: BootPhase | None = None


@dataclass(frozen=True, slots=True)
class Ignored:
    """An event we recognised as not ours or not usable; acked with ``reason`` logged."""

    reason: str
    envelope: Envelope | None = None


InboundEvent = ComputeEvent | ControlMessage | Ignored


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One line of the control-plane audit trail (what was done, to what, and why)."""

    pool: str
    at: datetime
    action: str  # "start", "stop", "route", "overflow", "event", "error"
    target: str
    reason: str
    generation: int = 0
