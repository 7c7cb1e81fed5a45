"""The simulated VM agent announces ready after a healthy engine and draining on preemption or stop."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Response

from spotgate.core.events import parse_delivery
from spotgate.domain import BootPhase, ControlKind, ControlMessage
from spotgate.errors import UnavailableError
from spotgate.sandbox.compute.agent import VmAgent
from spotgate.sandbox.compute.model import VmEvent, VmEventKind
from spotgate.sandbox.pubsub.push import Message, PushSubscription, cloud_event

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

NOW = datetime(2026, 11, 23, 12, 30, 0, 125000, tzinfo=UTC)


class FixedClock:
    def now(self) -> datetime:
        return NOW


class Engine:
    """A health endpoint that answers 503 ``unhealthy_for`` times, then 200 (or 503 forever if None)."""

    def __init__(self, unhealthy_for: int | None = 0) -> None:
        self.unhealthy_for = unhealthy_for
        self.checks = 0
        self._server: BaseWSGIServer = make_server("127.0.0.1", 0, self._app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def _app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        self.checks += 1
        healthy = self.unhealthy_for is not None and self.checks > self.unhealthy_for
        status = 200 if healthy and environ["PATH_INFO"] == "/health" else 503
        return Response("{}", status=status)(environ, start_response)

    def __enter__(self) -> Engine:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@dataclass
class RecordingPublisher:
    failures: int = 0
    published: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str] | None = None) -> str:
        with self._lock:
            if self.failures > 0:
                self.failures -= 1
                raise UnavailableError("pubsub is down")
            self.published.append((topic, json.loads(data)))
            return str(len(self.published))

    def kinds(self) -> list[str]:
        """What the agent announced (ready, draining), boot-progress reports left out."""
        with self._lock:
            return [message["kind"] for _, message in self.published if message["kind"] != "progress"]

    def phases(self) -> list[str]:
        with self._lock:
            return [message["phase"] for _, message in self.published if message["kind"] == "progress"]


@dataclass
class FakeModel:
    listeners: list[Callable[[VmEvent], None]] = field(default_factory=list)

    def emit(self, *events: VmEvent) -> None:
        for event in events:
            for listener in self.listeners:
                listener(event)


def a_vm_event(kind: VmEventKind, engine_url: str | None = None, instance: str = "llama-l4-a-0") -> VmEvent:
    return VmEvent(
        kind=kind,
        instance=instance,
        zone="us-central1-a",
        pool="llama",
        at=NOW,
        instance_id="4412009845573127711",
        network_ip="127.0.1.2",
        engine_url=engine_url if kind is VmEventKind.RUNNING else None,
    )


@pytest.fixture
def model() -> FakeModel:
    return FakeModel()


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


def an_agent(model: FakeModel, publisher: RecordingPublisher, **kwargs: Any) -> VmAgent:
    options: dict[str, Any] = {"clock": FixedClock(), "poll_interval": timedelta(milliseconds=10)}
    return VmAgent(model.listeners.append, publisher, **(options | kwargs))


@pytest.fixture
def agent(model: FakeModel, publisher: RecordingPublisher) -> Iterator[VmAgent]:
    vm_agent = an_agent(model, publisher)
    vm_agent.start()
    try:
        yield vm_agent
    finally:
        vm_agent.stop()


def test_ready_is_announced_once_the_engine_health_check_passes(
    agent: VmAgent, model: FakeModel, publisher: RecordingPublisher
) -> None:
    with Engine(unhealthy_for=3) as engine:
        model.emit(a_vm_event(VmEventKind.RUNNING, engine.url))
        assert agent.wait_idle(10)

    assert engine.checks == 4
    assert publisher.published == [
        (
            "control",
            {
                "v": 1,
                "kind": "progress",
                "phase": "loading",
                "pool": "llama",
                "instance": "llama-l4-a-0",
                "zone": "us-central1-a",
                "at": "2026-11-23T12:30:00.125Z",
            },
        ),
        (
            "control",
            {
                "v": 1,
                "kind": "ready",
                "pool": "llama",
                "instance": "llama-l4-a-0",
                "zone": "us-central1-a",
                "at": "2026-11-23T12:30:00.125Z",
            },
        ),
    ]


def test_preemption_announces_draining_once(agent: VmAgent, model: FakeModel, publisher: RecordingPublisher) -> None:
    with Engine() as engine:
        model.emit(a_vm_event(VmEventKind.RUNNING, engine.url))
        assert agent.wait_idle(10)
        model.emit(a_vm_event(VmEventKind.PREEMPT_NOTICE), a_vm_event(VmEventKind.STOPPING))
        model.emit(a_vm_event(VmEventKind.TERMINATED))
        assert agent.wait_idle(10)

    assert publisher.kinds() == ["ready", "draining"]


def test_a_vm_stopped_before_its_engine_is_healthy_drains_and_is_never_ready(
    agent: VmAgent, model: FakeModel, publisher: RecordingPublisher
) -> None:
    with Engine(unhealthy_for=None) as engine:
        model.emit(a_vm_event(VmEventKind.RUNNING, engine.url))
        model.emit(a_vm_event(VmEventKind.STOPPING))
        assert agent.wait_idle(10)

    assert publisher.kinds() == ["draining"]


def test_the_engine_loading_is_reported_as_boot_progress_before_ready(
    agent: VmAgent, model: FakeModel, publisher: RecordingPublisher
) -> None:
    """Issue 9, defect 12: the control plane measures boot_timeout from the last progress report."""
    with Engine(unhealthy_for=2) as engine:
        model.emit(a_vm_event(VmEventKind.RUNNING, engine.url))
        assert agent.wait_idle(10)
    assert [m["kind"] for _, m in publisher.published] == ["progress", "ready"]
    assert publisher.phases() == ["loading"]


def test_a_vm_stopped_before_its_guest_booted_sends_nothing(
    agent: VmAgent, model: FakeModel, publisher: RecordingPublisher
) -> None:
    model.emit(a_vm_event(VmEventKind.PREEMPT_NOTICE), a_vm_event(VmEventKind.STOPPING))
    assert agent.wait_idle(10)
    assert publisher.published == []


def test_each_boot_is_announced_again_after_a_restart(
    agent: VmAgent, model: FakeModel, publisher: RecordingPublisher
) -> None:
    with Engine() as engine:
        for _ in range(2):
            model.emit(a_vm_event(VmEventKind.RUNNING, engine.url))
            assert agent.wait_idle(10)
            model.emit(a_vm_event(VmEventKind.STOPPING), a_vm_event(VmEventKind.TERMINATED))
            assert agent.wait_idle(10)

    assert publisher.kinds() == ["ready", "draining", "ready", "draining"]


def test_polling_gives_up_after_the_health_timeout(model: FakeModel, publisher: RecordingPublisher) -> None:
    vm_agent = an_agent(model, publisher, health_timeout=timedelta(milliseconds=50))
    vm_agent.start()
    try:
        with Engine(unhealthy_for=None) as engine:
            model.emit(a_vm_event(VmEventKind.RUNNING, engine.url))
            assert vm_agent.wait_idle(10)
    finally:
        vm_agent.stop()
    assert publisher.kinds() == []
    assert publisher.phases() == ["loading"]
    assert engine.checks >= 1


def test_a_failed_publish_does_not_stop_later_announcements(model: FakeModel) -> None:
    flaky = RecordingPublisher(failures=1)
    vm_agent = an_agent(model, flaky)
    vm_agent.start()
    try:
        with Engine() as engine:
            model.emit(a_vm_event(VmEventKind.RUNNING, engine.url))
            assert vm_agent.wait_idle(10)
            model.emit(a_vm_event(VmEventKind.STOPPING))
            assert vm_agent.wait_idle(10)
    finally:
        vm_agent.stop()
    assert flaky.kinds() == ["ready", "draining"]  # the first publish (the loading report) failed
    assert flaky.phases() == []


def test_events_are_ignored_until_started_and_stop_cancels_polling(
    model: FakeModel, publisher: RecordingPublisher
) -> None:
    vm_agent = an_agent(model, publisher)
    with Engine(unhealthy_for=None) as engine:
        model.emit(a_vm_event(VmEventKind.RUNNING, engine.url))
        vm_agent.start()
        model.emit(a_vm_event(VmEventKind.RUNNING, engine.url, instance="llama-l4-b-0"))
        vm_agent.stop()
        vm_agent.stop()
    assert publisher.kinds() == []
    assert [m for _, m in publisher.published if m["instance"] == "llama-l4-a-0"] == []  # emitted before start
    assert vm_agent.wait_idle(0)


@pytest.mark.parametrize("kind", [ControlKind.READY, ControlKind.DRAINING, ControlKind.PROGRESS], ids=str)
def test_announcements_are_control_messages_the_parser_accepts(
    agent: VmAgent, model: FakeModel, publisher: RecordingPublisher, kind: ControlKind
) -> None:
    with Engine() as engine:
        model.emit(a_vm_event(VmEventKind.RUNNING, engine.url))
        assert agent.wait_idle(10)
        model.emit(a_vm_event(VmEventKind.STOPPING))
        assert agent.wait_idle(10)
    [(topic, message)] = [p for p in publisher.published if p[1]["kind"] == kind.value]
    subscription = PushSubscription("projects/p/subscriptions/s", f"projects/p/topics/{topic}", "")
    headers, body = cloud_event(subscription, Message(subscription.topic, json.dumps(message).encode(), {}, "1", NOW))

    event = parse_delivery(
        {"id": headers["ce-id"], "source": headers["ce-source"], "time": headers["ce-time"]},
        body,
        now=NOW,
        max_age=timedelta(minutes=5),
    )

    assert isinstance(event, ControlMessage)
    assert (event.kind, event.pool, event.instance, event.zone, event.at) == (
        kind,
        "llama",
        "llama-l4-a-0",
        "us-central1-a",
        NOW,
    )
    assert event.phase == (BootPhase.LOADING if kind is ControlKind.PROGRESS else None)
