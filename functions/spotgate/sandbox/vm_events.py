"""What happens to sandbox VMs, as events: the log sink and the VM agent emulations listen to these.

``SYSTEM_EVENT`` events are the ones GCE writes to the ``system_event`` audit log (their ``method`` is the
audit ``methodName``); the others are status changes and the preemption notice a guest would see
(ACPI soft-off, ``instance/preempted`` turning TRUE). Listeners run on the compute model's threads, in
order, and must not block; one failing listener is logged and does not stop the others.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

log = logging.getLogger(__name__)


class VmEventKind(enum.StrEnum):
    RUNNING = "running"
    STOPPING = "stopping"
    TERMINATED = "terminated"
    PREEMPT_NOTICE = "preempt_notice"
    SYSTEM_EVENT = "system_event"


@dataclass(frozen=True, slots=True)
class VmEvent:
    """Something that happened to a VM, with what a listener needs to describe or reach it."""

    kind: VmEventKind
    instance: str
    zone: str
    pool: str
    at: datetime
    method: str | None = None  # SYSTEM_EVENT: audit methodName, e.g. "compute.instances.preempted"
    instance_id: str = ""
    network_ip: str | None = None
    engine_url: str | None = None  # "http://127.x.y.z:port" once RUNNING
    health_path: str = "/health"


class EventLog:
    """The timestamped record of every event, and the listeners told of each as it is recorded."""

    def __init__(self) -> None:
        self._events: list[VmEvent] = []
        self._listeners: list[Callable[[VmEvent], None]] = []
        self._lock = threading.RLock()  # re-entrant: a listener may read the log while being told

    def add_listener(self, listener: Callable[[VmEvent], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def events(self) -> list[VmEvent]:
        with self._lock:
            return list(self._events)

    def record(self, event: VmEvent) -> None:
        """Append ``event`` and tell every listener, in the order they were added."""
        with self._lock:
            self._events.append(event)
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a listener's bug must not break the VM's lifecycle
                log.exception("VM event listener failed", extra={"instance": event.instance, "kind": str(event.kind)})
