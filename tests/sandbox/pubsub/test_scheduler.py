"""The sandbox Scheduler ticks the control topic with messages the control function accepts."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from spotgate.core.events import parse_delivery
from spotgate.domain import ControlKind, ControlMessage
from spotgate.errors import ConfigError, NotFoundError
from spotgate.sandbox.pubsub.push import Message, PushSubscription, cloud_event
from spotgate.sandbox.pubsub.scheduler import Scheduler

NOW = datetime(2026, 11, 23, 12, 5, 0, 250000, tzinfo=UTC)


class FixedClock:
    def now(self) -> datetime:
        return NOW


class CountingPublisher:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.published: list[tuple[str, bytes]] = []
        self._changed = threading.Condition()

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str] | None = None) -> str:
        if self.fail:
            raise NotFoundError("Resource not found (resource=control).")
        with self._changed:
            self.published.append((topic, data))
            self._changed.notify_all()
            return str(len(self.published))

    def wait_for(self, count: int) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.published) >= count, timeout=10)


def test_ticks_repeat_on_the_control_topic_until_stopped() -> None:
    publisher = CountingPublisher()
    scheduler = Scheduler(publisher, interval=timedelta(milliseconds=20), first_after=timedelta(0), clock=FixedClock())
    scheduler.start()
    try:
        assert publisher.wait_for(3)
    finally:
        scheduler.stop()
    published = len(publisher.published)

    assert scheduler.ticks == published
    assert {topic for topic, _ in publisher.published} == {"control"}
    assert json.loads(publisher.published[0][1]) == {"v": 1, "kind": "tick", "at": "2026-11-23T12:05:00.250Z"}
    scheduler.stop()
    assert len(publisher.published) == published


def test_a_tick_is_a_control_message_the_parser_accepts() -> None:
    publisher = CountingPublisher()
    Scheduler(publisher, interval=timedelta(minutes=1), clock=FixedClock()).tick()
    [(topic, data)] = publisher.published
    subscription = PushSubscription("projects/p/subscriptions/s", f"projects/p/topics/{topic}", "")
    headers, body = cloud_event(subscription, Message(subscription.topic, data, {}, "1", NOW))

    event = parse_delivery(
        {"id": headers["ce-id"], "source": headers["ce-source"], "time": headers["ce-time"]},
        body,
        now=NOW,
        max_age=timedelta(minutes=5),
    )

    assert isinstance(event, ControlMessage)
    assert (event.kind, event.pool, event.at) == (ControlKind.TICK, None, NOW)


def test_first_tick_comes_before_the_first_interval_elapses() -> None:
    publisher = CountingPublisher()
    scheduler = Scheduler(publisher, interval=timedelta(hours=1), first_after=timedelta(0))
    scheduler.start()
    try:
        assert publisher.wait_for(1)
    finally:
        scheduler.stop()
    assert scheduler.ticks == 1


def test_a_refused_publish_is_logged_not_raised() -> None:
    scheduler = Scheduler(CountingPublisher(fail=True), interval=timedelta(minutes=1))
    assert scheduler.tick() is None
    assert scheduler.ticks == 0


@pytest.mark.parametrize(
    ("interval", "first_after"),
    [
        pytest.param(timedelta(0), timedelta(0), id="zero-interval"),
        pytest.param(timedelta(seconds=1), timedelta(seconds=-1), id="negative-first"),
    ],
)
def test_invalid_timing_is_a_config_error(interval: timedelta, first_after: timedelta) -> None:
    with pytest.raises(ConfigError):
        Scheduler(CountingPublisher(), interval=interval, first_after=first_after)
