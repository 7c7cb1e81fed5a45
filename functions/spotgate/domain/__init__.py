"""Domain values: frozen dataclasses and enums shared by every layer.

Nothing here does I/O, reads a clock or imports a cloud library. Raw external JSON is converted into
these types at the adapter boundary, and everything inward of the adapters speaks only these types.
"""

from __future__ import annotations

from spotgate.domain.actions import Action, Plan, SetOverflow, SetRoute, StartInstance, StopInstance
from spotgate.domain.activity import Activity, GatewayActivity
from spotgate.domain.advice import ZoneAdvice
from spotgate.domain.events import (
    BootPhase,
    ComputeEvent,
    ComputeEventKind,
    ControlKind,
    ControlMessage,
    DecisionRecord,
    Envelope,
    Ignored,
    InboundEvent,
)
from spotgate.domain.history import HISTORY_RETENTION, SERVED_KINDS, HistoryKind, HistoryRecord, ServedCount
from spotgate.domain.instance import Instance, InstanceStatus, ProvisioningModel
from spotgate.domain.keys import ApiKey, KeyUsage
from spotgate.domain.observed import Observed
from spotgate.domain.pool_state import (
    FailureKind,
    Notice,
    NoticeKind,
    Override,
    OverrideKind,
    PoolState,
    Preemption,
    Progress,
    StartFailure,
    Stockout,
)
from spotgate.domain.route import BackendKind, Route, RouteState

__all__ = [
    "HISTORY_RETENTION",
    "SERVED_KINDS",
    "Action",
    "Activity",
    "ApiKey",
    "BackendKind",
    "BootPhase",
    "ComputeEvent",
    "ComputeEventKind",
    "ControlKind",
    "ControlMessage",
    "DecisionRecord",
    "Envelope",
    "FailureKind",
    "GatewayActivity",
    "HistoryKind",
    "HistoryRecord",
    "Ignored",
    "InboundEvent",
    "Instance",
    "InstanceStatus",
    "KeyUsage",
    "Notice",
    "NoticeKind",
    "Observed",
    "Override",
    "OverrideKind",
    "Plan",
    "PoolState",
    "Preemption",
    "Progress",
    "ProvisioningModel",
    "Route",
    "RouteState",
    "ServedCount",
    "SetOverflow",
    "SetRoute",
    "StartFailure",
    "StartInstance",
    "Stockout",
    "StopInstance",
    "ZoneAdvice",
]
