"""What happens to sandbox VMs, as events: the log sink and the VM agent emulations listen to these.

``SYSTEM_EVENT`` events are the ones GCE writes to the ``system_event`` audit log (their ``method`` is the
audit ``methodName``); the others are status changes and the preemption notice a guest would see
(ACPI soft-off, ``instance/preempted`` turning TRUE). Listeners run on the compute model's threads, in
order, on one dispatcher thread, and should not block; a failing listener is logged and does not stop the others.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from spotgate.sandbox.compute.records import Vm

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

    @classmethod
    def of(cls, kind: VmEventKind, vm: Vm, at: datetime, method: str | None = None) -> VmEvent:
        """The event for ``vm`` as it is now; only RUNNING carries the engine URL."""
        return cls(
            kind=kind,
            instance=vm.name,
            zone=vm.zone,
            pool=vm.pool,
            at=at,
            method=method,
            instance_id=vm.instance_id,
            network_ip=vm.network_ip,
            engine_url=vm.engine_url if kind is VmEventKind.RUNNING else None,
            health_path=vm.health_path,
        )


class EventLog:
    """The timestamped record of every event, and the listeners told of each, in order, off the caller's thread.

    ``record`` only appends and enqueues, so the compute model can record while holding its lock; one
    dispatcher thread calls the listeners, so a slow listener delays other listeners, never a VM.
    """

    def __init__(self) -> None:
        self._events: list[VmEvent] = []
        self._listeners: list[Callable[[VmEvent], None]] = []
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[VmEvent | None] = queue.SimpleQueue()
        self._dispatcher = threading.Thread(target=self._dispatch, name="vm-events", daemon=True)
        self._dispatcher.start()

    def add_listener(self, listener: Callable[[VmEvent], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def events(self) -> list[VmEvent]:
        with self._lock:
            return list(self._events)

    def record(self, event: VmEvent) -> None:
        """Append ``event`` now; listeners hear of it shortly, in recording order."""
        with self._lock:
            self._events.append(event)
        self._queue.put(event)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued, then stop the dispatcher (bounded by ``timeout``). Idempotent."""
        self._queue.put(None)
        self._dispatcher.join(timeout)

    def _dispatch(self) -> None:
        while (event := self._queue.get()) is not None:
            with self._lock:
                listeners = list(self._listeners)
            for listener in listeners:
                try:
                    listener(event)
                except Exception:  # a listener's bug must not stop the others or later events
                    log.exception(
                        "VM event listener failed", extra={"instance": event.instance, "kind": str(event.kind)}
                    )
