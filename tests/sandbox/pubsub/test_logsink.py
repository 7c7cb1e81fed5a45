"""The sandbox log sink publishes system events as the audit LogEntries the compute function parses."""

from __future__ import annotations

import json
import random
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from spotgate.core.events import parse_delivery
from spotgate.domain import ComputeEvent, ComputeEventKind
from spotgate.errors import UnavailableError
from spotgate.sandbox.compute.model import VmEvent, VmEventKind
from spotgate.sandbox.pubsub.logsink import LogSink
from spotgate.sandbox.pubsub.push import Message, PushSubscription, cloud_event

PROJECT = "sandbox-proj"
AT = datetime(2026, 11, 23, 12, 0, 14, 413235, tzinfo=UTC)


@dataclass
class RecordingPublisher:
    """Records what is published; fails the first ``failures`` calls like an unreachable Pub/Sub."""

    failures: int = 0
    published: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str] | None = None) -> str:
        with self._lock:
            if self.failures > 0:
                self.failures -= 1
                raise UnavailableError("pubsub is down")
            self.published.append((topic, data, dict(attributes or {})))
            return str(len(self.published))

    def entries(self) -> list[dict[str, object]]:
        return [json.loads(data) for _, data, _ in self.published]


@dataclass
class FakeModel:
    listeners: list[Callable[[VmEvent], None]] = field(default_factory=list)

    def emit(self, *events: VmEvent) -> None:
        for event in events:
            for listener in self.listeners:
                listener(event)


def a_vm_event(
    kind: VmEventKind = VmEventKind.SYSTEM_EVENT, method: str | None = "compute.instances.preempted"
) -> VmEvent:
    return VmEvent(
        kind=kind,
        instance="llama-l4-a-0",
        zone="us-central1-a",
        pool="llama",
        at=AT,
        method=method,
        instance_id="4412009845573127711",
        network_ip="127.0.1.2",
    )


@pytest.fixture
def model() -> FakeModel:
    return FakeModel()


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def sink(model: FakeModel, publisher: RecordingPublisher) -> Iterator[LogSink]:
    log_sink = LogSink(model.listeners.append, publisher, project=PROJECT, rng=random.Random(3))
    log_sink.start()
    try:
        yield log_sink
    finally:
        log_sink.stop()


def test_preemption_is_published_as_a_system_event_audit_entry(
    sink: LogSink, model: FakeModel, publisher: RecordingPublisher
) -> None:
    model.emit(a_vm_event())
    sink.stop()  # drains the queue

    [(topic, _, attributes)] = publisher.published
    [entry] = publisher.entries()
    assert topic == "compute"
    assert attributes == {"logging.googleapis.com/timestamp": "2026-11-23T12:00:14.413235Z"}
    assert entry["logName"] == f"projects/{PROJECT}/logs/cloudaudit.googleapis.com%2Fsystem_event"
    assert entry["severity"] == "INFO"
    assert entry["timestamp"] == "2026-11-23T12:00:14.413235Z"
    assert entry["resource"] == {
        "type": "gce_instance",
        "labels": {"instance_id": "4412009845573127711", "project_id": PROJECT, "zone": "us-central1-a"},
    }
    assert entry["protoPayload"] == {
        "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
        "authenticationInfo": {"principalEmail": "system@google.com"},
        "methodName": "compute.instances.preempted",
        "request": {"@type": "type.googleapis.com/compute.instances.preempted"},
        "resourceName": f"projects/{PROJECT}/zones/us-central1-a/instances/llama-l4-a-0",
        "serviceName": "compute.googleapis.com",
        "status": {"message": "Instance was preempted."},
    }
    operation = entry["operation"]
    assert isinstance(operation, dict)
    assert re.fullmatch(r"systemevent-\d{13}-[0-9a-f]{13}-[0-9a-f]{8}-[0-9a-f]{8}", operation["id"])
    assert operation | {"id": ""} == {"id": "", "producer": "compute.instances.preempted", "first": True, "last": True}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", str(entry["receiveTimestamp"]))


@pytest.mark.parametrize("kind", list(ComputeEventKind), ids=lambda k: k.name.lower())
def test_every_sink_method_round_trips_through_the_compute_event_parser(
    sink: LogSink, model: FakeModel, publisher: RecordingPublisher, kind: ComputeEventKind
) -> None:
    model.emit(a_vm_event(method=kind.value))
    sink.stop()

    [(topic, data, attributes)] = publisher.published
    subscription = PushSubscription(f"projects/{PROJECT}/subscriptions/s", f"projects/{PROJECT}/topics/{topic}", "")
    headers, body = cloud_event(subscription, Message(subscription.topic, data, attributes, "7", AT))
    ce_attributes = {"id": headers["ce-id"], "source": headers["ce-source"], "time": headers["ce-time"]}

    event = parse_delivery(ce_attributes, body, now=AT + timedelta(seconds=5), max_age=timedelta(minutes=10))

    assert isinstance(event, ComputeEvent)
    assert (event.kind, event.project, event.zone, event.instance) == (kind, PROJECT, "us-central1-a", "llama-l4-a-0")
    assert (event.at, event.instance_id) == (AT, "4412009845573127711")


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(a_vm_event(method="compute.instances.migrateOnHostMaintenance"), id="method-outside-filter"),
        pytest.param(a_vm_event(kind=VmEventKind.STOPPING, method=None), id="status-change"),
        pytest.param(a_vm_event(kind=VmEventKind.PREEMPT_NOTICE, method=None), id="preempt-notice"),
    ],
)
def test_events_the_sink_filter_excludes_are_not_published(
    sink: LogSink, model: FakeModel, publisher: RecordingPublisher, event: VmEvent
) -> None:
    model.emit(event)
    sink.stop()
    assert publisher.published == []


def test_a_failed_publish_is_logged_and_later_events_still_flow(model: FakeModel) -> None:
    flaky = RecordingPublisher(failures=1)
    log_sink = LogSink(model.listeners.append, flaky, project=PROJECT)
    log_sink.start()
    try:
        model.emit(a_vm_event(), a_vm_event(method="compute.instances.hostError"))
    finally:
        log_sink.stop()

    assert [entry["protoPayload"]["methodName"] for entry in flaky.entries()] == ["compute.instances.hostError"]  # type: ignore[index]


def test_nothing_is_published_before_start_or_after_stop(model: FakeModel, publisher: RecordingPublisher) -> None:
    log_sink = LogSink(model.listeners.append, publisher, project=PROJECT)
    model.emit(a_vm_event())
    log_sink.start()
    log_sink.stop()
    log_sink.stop()
    model.emit(a_vm_event())
    assert publisher.published == []
