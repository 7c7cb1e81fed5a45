"""Where each VM of a pool stands, from its observed status plus what the pool remembers about it.

Compute Engine's status alone cannot say whether a VM serves: RUNNING covers "booting the engine" as well as
"serving", and a preempted VM is RUNNING for its last 30 seconds. The agent's ``ready``/``draining`` notices
fill that in, but only a notice newer than the VM's ``lastStartTimestamp`` is about the current boot; an
older one belongs to a previous life of the VM and is ignored.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from spotgate.domain import Instance, InstanceStatus, Notice, NoticeKind, PoolState, ProvisioningModel
from spotgate.fleet import PoolSpec

# The start call waits for its operation, so a start that worked shows the VM live by the next reconcile. A VM
# still observed stopped this long after its start was issued did not start (the call failed, or the result
# was lost); it may be chosen again.
START_TAKES = timedelta(minutes=3)


class Phase(enum.Enum):
    STOPPED = "stopped"  # TERMINATED/STOPPED/SUSPENDED: a start brings it back
    PENDING = "pending"  # stopped as observed, but a start was issued within START_TAKES
    BOOTING = "booting"  # live, no ready notice for this boot yet
    READY = "ready"  # RUNNING and the engine said ready during this boot
    DRAINING = "draining"  # live or STOPPING after a preemption/shutdown notice: no new requests
    STUCK = "stuck"  # live and not ready although boot_timeout has passed since its start
    STOPPING = "stopping"  # on its way down (STOPPING, SUSPENDING, REPAIRING, …): wait for it


@dataclass(frozen=True, slots=True)
class Vm:
    """An observed instance with its phase and the notice that decided it (if any)."""

    instance: Instance
    phase: Phase
    notice: Notice | None = None

    @property
    def name(self) -> str:
        return self.instance.name

    @property
    def is_spot(self) -> bool:
        return self.instance.provisioning_model is ProvisioningModel.SPOT

    @property
    def counts_as_live(self) -> bool:
        """Counts toward the desired number: serving, or expected to serve soon."""
        return self.phase in (Phase.PENDING, Phase.BOOTING, Phase.READY)

    @property
    def is_up(self) -> bool:
        """Compute Engine reports it live (it costs money, and a stop would act on it)."""
        return self.instance.status.is_live


def classify(instance: Instance, state: PoolState, spec: PoolSpec, now: datetime) -> Vm:
    """The VM's phase now; see ``Phase``."""
    notice = current_notice(instance, state)
    if instance.status.is_stopped:
        return Vm(instance, Phase.PENDING if _start_pending(instance, state, spec, now) else Phase.STOPPED)
    if notice is not None and notice.kind is NoticeKind.DRAINING:
        return Vm(instance, Phase.DRAINING, notice)
    if not instance.status.is_live:
        return Vm(instance, Phase.STOPPING, notice)
    if notice is not None and instance.status is InstanceStatus.RUNNING:
        return Vm(instance, Phase.READY, notice)
    started = boot_started(instance, state)
    if started is not None and now - started > spec.boot_timeout:
        return Vm(instance, Phase.STUCK, notice)
    return Vm(instance, Phase.BOOTING, notice)


def current_notice(instance: Instance, state: PoolState) -> Notice | None:
    """The VM's notice if it was sent during the current boot (not before its last start or stop)."""
    notice = state.notices.get(instance.name)
    boundaries = [t for t in (instance.last_start, instance.last_stop) if t is not None]
    if notice is None or (boundaries and notice.at < max(boundaries)):
        return None
    return notice


def boot_started(instance: Instance, state: PoolState) -> datetime | None:
    """When the current boot began: the later of the observed start time and the start spotgate issued.

    GCE keeps a restarted VM's previous ``lastStartTimestamp`` while it is PROVISIONING/STAGING and sets the
    new one only once it is RUNNING, so during that window the observed time belongs to the previous boot
    (possibly hours ago) and only the issued start says when this boot began.
    """
    times = [t for t in (instance.last_start, state.start_attempts.get(instance.name)) if t is not None]
    return max(times, default=None)


def _start_pending(instance: Instance, state: PoolState, spec: PoolSpec, now: datetime) -> bool:
    issued = state.start_attempts.get(instance.name)
    if issued is None or now - issued > min(START_TAKES, spec.boot_timeout):
        return False
    # Stopped again after the start was issued (a preemption during boot): the attempt is over.
    return instance.last_stop is None or instance.last_stop < issued
