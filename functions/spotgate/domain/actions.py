"""What the planner decides: effects for the shell to apply, each with a human-readable reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from spotgate.domain.instance import ProvisioningModel
from spotgate.domain.pool_state import PoolState
from spotgate.domain.route import Route


@dataclass(frozen=True, slots=True)
class StartInstance:
    """Bring a stopped VM back. ``resume`` is set for a SUSPENDED VM: GCE refuses ``start`` on one and needs
    ``instances.resume``, which restores its memory; otherwise it is a start in every respect.
    """

    instance: str
    zone: str
    provisioning_model: ProvisioningModel
    reason: str
    resume: bool = False


@dataclass(frozen=True, slots=True)
class StopInstance:
    instance: str
    zone: str
    reason: str


@dataclass(frozen=True, slots=True)
class SetRoute:
    """Upsert one routing-table entry; the reason is the route's own."""

    route: Route

    @property
    def reason(self) -> str:
        return self.route.reason


@dataclass(frozen=True, slots=True)
class SetOverflow:
    """Set the overflow Cloud Run service's service-level min instances (1 = warm, 0 = scale to zero)."""

    service: str
    min_instances: int
    reason: str


Action = StartInstance | StopInstance | SetRoute | SetOverflow


@dataclass(frozen=True, slots=True)
class Plan:
    """The planner's answer: actions to apply, the state to commit, and when to look again."""

    actions: tuple[Action, ...]
    next_state: PoolState
    requeue_after: timedelta | None = None
