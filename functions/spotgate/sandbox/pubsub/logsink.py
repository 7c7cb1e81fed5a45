"""The Cloud Logging sink of the sandbox: VM system events published as real audit ``LogEntry`` JSON.

In GCP, spotgate learns of preemptions from a log sink that routes ``system_event`` audit entries to the
``compute`` topic (DESIGN §2.2). The sandbox reproduces that pipe byte for byte where it matters: the entry
shape of wire-formats §1.1, the sink's single ``logging.googleapis.com/timestamp`` attribute, and the sink
filter's five methods, so ``on_compute_event`` parses sandbox deliveries with no special case.

Listeners are called by the Compute model while it holds its lock, so ``on_event`` only enqueues; a worker
thread builds and publishes the entries.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import string
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from spotgate.clock import SystemClock
from spotgate.domain import ComputeEventKind
from spotgate.errors import SpotgateError
from spotgate.ports import Clock
from spotgate.sandbox.compute.model import VmEvent, VmEventKind
from spotgate.sandbox.pubsub.service import MessagePublisher

log = logging.getLogger(__name__)

TIMESTAMP_ATTRIBUTE = "logging.googleapis.com/timestamp"
SINK_METHODS = frozenset(kind.value for kind in ComputeEventKind)
# status.message as seen in captured entries; methods without a captured message log an empty status.
_STATUS_MESSAGES = {
    ComputeEventKind.PREEMPTED.value: "Instance was preempted.",
    ComputeEventKind.HOST_ERROR.value: "Instance terminated by Compute Engine.",
    ComputeEventKind.GUEST_TERMINATE.value: "Instance terminated by guest OS shutdown.",
}
_INSERT_ID_ALPHABET = string.ascii_lowercase + string.digits


def micros(at: datetime) -> str:
    """``2025-03-17T06:00:14.413235Z``: a LogEntry ``timestamp``."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def nanos(at: datetime) -> str:
    """``2025-03-17T06:00:15.268708000Z``: a LogEntry ``receiveTimestamp`` (nanosecond precision)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def system_event_entry(event: VmEvent, project: str, *, received: datetime, rng: random.Random) -> dict[str, Any]:
    """The audit ``LogEntry`` GCE writes for a SYSTEM_EVENT ``event`` (ids drawn from ``rng``)."""
    method = event.method or ""
    status = {"message": _STATUS_MESSAGES[method]} if method in _STATUS_MESSAGES else {}
    return {
        "insertId": "".join(rng.choices(_INSERT_ID_ALPHABET, k=12)),
        "labels": {"compute.googleapis.com/root_trigger_id": str(uuid.UUID(int=rng.getrandbits(128), version=4))},
        "logName": f"projects/{project}/logs/cloudaudit.googleapis.com%2Fsystem_event",
        "operation": {"first": True, "id": _operation_id(event.at, rng), "last": True, "producer": method},
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "authenticationInfo": {"principalEmail": "system@google.com"},
            "methodName": method,
            "request": {"@type": f"type.googleapis.com/{method}"},
            "resourceName": f"projects/{project}/zones/{event.zone}/instances/{event.instance}",
            "serviceName": "compute.googleapis.com",
            "status": status,
        },
        "receiveTimestamp": nanos(max(received, event.at)),
        "resource": {
            "labels": {"instance_id": event.instance_id, "project_id": project, "zone": event.zone},
            "type": "gce_instance",
        },
        "severity": "INFO",
        "timestamp": micros(event.at),
    }


def _operation_id(at: datetime, rng: random.Random) -> str:
    """``systemevent-<epoch ms>-<13 hex>-<8 hex>-<8 hex>``, the form of GCE's system-event operation names."""
    millis = int(at.timestamp() * 1000)
    return f"systemevent-{millis}-{rng.getrandbits(52):013x}-{rng.getrandbits(32):08x}-{rng.getrandbits(32):08x}"


class LogSink:
    """Publishes each system event of the five sink methods to ``topic`` while started."""

    def __init__(
        self,
        add_listener: Callable[[Callable[[VmEvent], None]], None],
        publisher: MessagePublisher,
        *,
        project: str,
        topic: str = "compute",
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._publisher = publisher
        self._project = project
        self._topic = topic
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._queue: queue.SimpleQueue[VmEvent | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        add_listener(self.on_event)

    def start(self) -> None:
        """Start forwarding; a no-op if running."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._forward, name="sandbox-logsink", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Publish what is already queued, then stop the worker; idempotent."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            thread.join(timeout=10)

    def on_event(self, event: VmEvent) -> None:
        """The Compute model's listener: queue system events the sink filter selects (never blocks)."""
        if self._thread is not None and event.kind is VmEventKind.SYSTEM_EVENT and event.method in SINK_METHODS:
            self._queue.put(event)

    def _forward(self) -> None:
        while (event := self._queue.get()) is not None:
            entry = system_event_entry(event, self._project, received=self._clock.now(), rng=self._rng)
            data = json.dumps(entry, separators=(",", ":")).encode()
            try:
                self._publisher.publish(self._topic, data, {TIMESTAMP_ATTRIBUTE: entry["timestamp"]})
            except SpotgateError:
                log.exception("log sink could not publish", extra={"instance": event.instance, "method": event.method})
            else:
                log.info("log sink published", extra={"instance": event.instance, "method": event.method})
