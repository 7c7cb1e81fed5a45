"""Where each VM of a pool stands, from its observed status plus what the pool remembers about it.

Compute Engine's status alone cannot say whether a VM serves: RUNNING covers "booting the engine" as well as
"serving", and a preempted VM is RUNNING for its last 30 seconds. The agent's ``ready``/``draining`` notices
fill that in, but only a notice newer than the VM's ``lastStartTimestamp`` is about the current boot; an
older one belongs to a previous life of the VM and is ignored.

A boot is judged stuck by lack of progress, not by its length: a first boot installs drivers, copies weights
and pulls an image for longer than ``boot_timeout``, but the agent reports each phase as it begins, and only
``boot_timeout`` without a report (or a start) means the boot has failed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from spotgate.domain import Instance, InstanceStatus, Notice, NoticeKind, PoolState, Progress, ProvisioningModel
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
    STUCK = "stuck"  # live, not ready, and no boot progress for boot_timeout (since its start or last phase)
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
    moved = last_progress(instance, state)
    if moved is not None and now - moved > spec.boot_timeout:
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


def current_progress(instance: Instance, state: PoolState) -> Progress | None:
    """The last boot phase the VM's agent reported during the current boot, if any."""
    progress = state.progress.get(instance.name)
    started = boot_started(instance, state)
    if progress is None or (started is not None and progress.at < started):
        return None
    return progress


def last_progress(instance: Instance, state: PoolState) -> datetime | None:
    """When the current boot last showed progress: its start, or the agent's last phase report since."""
    progress = current_progress(instance, state)
    return progress.at if progress is not None else boot_started(instance, state)


def _start_pending(instance: Instance, state: PoolState, spec: PoolSpec, now: datetime) -> bool:
    issued = state.start_attempts.get(instance.name)
    if issued is None or now - issued > min(START_TAKES, spec.boot_timeout):
        return False
    # Stopped again after the start was issued (a preemption during boot): the attempt is over.
    return instance.last_stop is None or instance.last_stop < issued
