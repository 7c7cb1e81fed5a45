"""How the control plane tells people what it did: audit records, the plan's log line, action names.

Every action carries a human-readable reason (DESIGN §2.3); the shell logs the plan once per reconcile and
stores each issued or failed action as a ``DecisionRecord`` (``spotgate status`` shows them). The kinds and
targets here are also the low-cardinality labels of the control-plane metrics (infra/modules/observability).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from spotgate.domain import (
    Action,
    ComputeEvent,
    ControlMessage,
    DecisionRecord,
    Plan,
    SetOverflow,
    SetRoute,
    StartInstance,
    StopInstance,
)
from spotgate.errors import SpotgateError
from spotgate.fleet import PoolSpec

log = logging.getLogger("spotgate.control_plane")


def describe_event(event: ComputeEvent | ControlMessage) -> str:
    if isinstance(event, ComputeEvent):
        return f"instance {event.instance} ({event.kind.value})"
    return f"{event.kind.value} message for pool={event.pool} instance={event.instance}"


def action_kind(action: Action) -> str:
    return {StartInstance: "start", StopInstance: "stop", SetRoute: "route", SetOverflow: "overflow"}[type(action)]


def action_target(action: Action) -> str:
    if isinstance(action, SetRoute):
        return f"{action.route.backend}={action.route.state.value}"
    if isinstance(action, SetOverflow):
        return f"{action.service} min={action.min_instances}"
    return action.instance


def decision_record(spec: PoolSpec, now: datetime, kind: str, action: Action, reason: str) -> DecisionRecord:
    return DecisionRecord(pool=spec.name, at=now, action=kind, target=action_target(action), reason=reason)


def error_reason(error: SpotgateError) -> str:
    """A short, low-cardinality reason for metrics: GCE's error code when known, else the error's class."""
    code = getattr(error, "code", None)
    return str(code) if code else type(error).__name__


def log_plan(spec: PoolSpec, decided: Plan, health: Mapping[str, int | bool]) -> None:
    log.info(
        "plan for %s: %d action(s)",
        spec.name,
        len(decided.actions),
        extra={
            **health,
            "pool": spec.name,
            "plan": [f"{action_kind(a)} {action_target(a)}: {a.reason}" for a in decided.actions],
            "requeue_after_s": decided.requeue_after.total_seconds() if decided.requeue_after else None,
        },
    )


def describe_action(action: Action) -> tuple[str, str]:
    """``(kind, target)`` of an action for people: ``("start", "chat-b-1")``, ``("route", "chat-a-1=ready")``."""
    return action_kind(action), action_target(action)
