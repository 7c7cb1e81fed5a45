"""What happened to a pool, kept long enough to report on a deployed fleet (``spotgate report``).

The audit trail (``DecisionRecord``) is bounded per pool and says what the control plane *did*; a report over
days needs what the pool *was*: every VM state change with its cause, every overflow scale change, every route
change, every preemption and stockout, and how many VMs had requests in flight as the control plane saw it. Each
is one ``HistoryRecord``; the levels between two records are constant, so a report integrates them over time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

HISTORY_RETENTION = timedelta(days=35)  # the store keeps records this long (``--since`` up to a month)


class HistoryKind(enum.StrEnum):
    VM = "vm"  # subject: instance; state: its GCE status; zone, provisioning_model set
    PREEMPTED = "preempted"  # subject: instance; zone set; cause: the GCE system event
    STOCKOUT = "stockout"  # subject: instance a start failed for; zone set
    ROUTE = "route"  # subject: backend; state: route state; backend_kind: "vm" or "overflow"
    OVERFLOW = "overflow"  # subject: service; state: its min instances
    BUSY = "busy"  # count: VMs with requests in flight (as the gateway's activity said at a round)


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    pool: str
    at: datetime
    kind: HistoryKind
    subject: str
    state: str = ""
    zone: str = ""
    provisioning_model: str = ""
    backend_kind: str = ""
    cause: str = ""
    count: int = 0


SERVED_KINDS = ("vm", "overflow", "overflow_cold_start", "held_then_vm", "refused_503")  # simulate's ``Served``


@dataclass(frozen=True, slots=True)
class ServedCount:
    """Requests of a pool that ended in one UTC minute, by where they were served (``SERVED_KINDS``).

    The gateway adds its counts up (every instance its own deltas), like per-key usage; a minute is fine
    enough for a report over days and small enough to keep a month of it.
    """

    pool: str
    minute: datetime
    kind: str
    requests: int
