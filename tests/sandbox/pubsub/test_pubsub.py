"""Sandbox Pub/Sub: the real publisher client publishes, functions receive Eventarc CloudEvents, at least once."""

from __future__ import annotations

import base64
import json
import random
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import functions_framework
import pytest
import requests
from cloudevents.http import CloudEvent, from_http
from google.api_core import exceptions as google_exceptions
from google.cloud.pubsub_v1 import PublisherClient
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from spotgate.errors import InvalidEventError, NotFoundError, UnavailableError
from spotgate.sandbox.pubsub.push import Chaos, Message, PushSubscription, RetryPolicy, cloud_event
from spotgate.sandbox.pubsub.service import PubSub

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

PROJECT = "sandbox-proj"
FAST_RETRY = RetryPolicy(
    min_backoff=timedelta(milliseconds=20),
    max_backoff=timedelta(milliseconds=100),
    max_attempts=4,
    ack_deadline=timedelta(seconds=5),
)


class Receiver:
    """A push endpoint that parses each delivery with the CloudEvents SDK and answers ``failures`` 500s first."""

    def __init__(self, failures: int = 0) -> None:
        self.events: list[CloudEvent] = []
        self.failures = failures
        self._lock = threading.Lock()
        self._server: BaseWSGIServer = make_server("127.0.0.1", 0, self._app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/"

    def _app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        event = from_http(dict(request.headers), request.get_data())
        with self._lock:
            self.events.append(event)
            failing = self.failures > 0
            self.failures -= 1
        response = Response("boom", status=500) if failing else Response(status=204)
        return response(environ, start_response)

    def ids(self) -> list[str]:
        with self._lock:
            return sorted(e["id"] for e in self.events)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def a_pubsub(**kwargs: object) -> PubSub:
    options: dict[str, object] = {"topics": ("control", "compute"), "rng": random.Random(7), "retry": FAST_RETRY}
    return PubSub(PROJECT, **(options | kwargs))  # type: ignore[arg-type]


@pytest.fixture
def pubsub() -> Iterator[PubSub]:
    broker = a_pubsub()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as endpoint:
        yield endpoint


@pytest.fixture
def publisher(pubsub: PubSub, monkeypatch: pytest.MonkeyPatch) -> Iterator[PublisherClient]:
    # The client reads PUBSUB_EMULATOR_HOST when constructed, exactly as the production adapter's does.
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub.emulator_host)
    client = PublisherClient()
    try:
        yield client
    finally:
        client.stop()
        client.transport.close()


def test_real_publisher_client_message_arrives_as_an_eventarc_cloudevent(
    pubsub: PubSub, receiver: Receiver, publisher: PublisherClient
) -> None:
    subscription = pubsub.subscribe_push("control", receiver.url)

    message_id = publisher.publish(f"projects/{PROJECT}/topics/control", b'{"v":1}', origin="test").result(10)

    assert pubsub.wait_idle(10)
    [event] = receiver.events
    assert event["id"] == message_id
    assert event["source"] == f"//pubsub.googleapis.com/projects/{PROJECT}/topics/control"
    assert event["type"] == "google.cloud.pubsub.topic.v1.messagePublished"
    assert event.data["subscription"] == subscription.name
    message = event.data["message"]
    assert base64.b64decode(message["data"]) == b'{"v":1}'
    assert message["attributes"] == {"origin": "test"}
    assert message["messageId"] == message["message_id"] == message_id
    assert message["publishTime"] == message["publish_time"] == event["time"]


def test_real_publisher_client_gets_not_found_for_a_missing_topic(publisher: PublisherClient) -> None:
    future = publisher.publish(f"projects/{PROJECT}/topics/no-such-topic", b"x")
    with pytest.raises(google_exceptions.NotFound):
        future.result(10)


def test_rest_publish_with_a_bearer_token_is_delivered(pubsub: PubSub, receiver: Receiver) -> None:
    pubsub.subscribe_push("control", receiver.url)
    body = {"messages": [{"data": base64.b64encode(b'{"kind":"ready"}').decode()}]}

    response = requests.post(
        f"{pubsub.rest_url}/v1/projects/{PROJECT}/topics/control:publish",
        json=body,
        headers={"Authorization": "Bearer ya29.vm-token"},
        timeout=5,
    )

    assert response.status_code == 200
    assert pubsub.wait_idle(10)
    assert receiver.ids() == response.json()["messageIds"]
    assert "attributes" not in receiver.events[0].data["message"]


@pytest.mark.parametrize(
    ("topic", "headers", "status"),
    [
        pytest.param("control", {}, 401, id="no-token"),
        pytest.param("nope", {"Authorization": "Bearer t"}, 404, id="missing-topic"),
    ],
)
def test_rest_publish_refusals(pubsub: PubSub, topic: str, headers: dict[str, str], status: int) -> None:
    response = requests.post(
        f"{pubsub.rest_url}/v1/projects/{PROJECT}/topics/{topic}:publish",
        json={"messages": [{"data": "eA=="}]},
        headers=headers,
        timeout=5,
    )
    assert response.status_code == status
    assert response.json()["error"]["code"] == status


def test_in_process_publish_validates_topic_and_content(pubsub: PubSub) -> None:
    with pytest.raises(NotFoundError):
        pubsub.publish("nope", b"x")
    with pytest.raises(InvalidEventError):
        pubsub.publish("control", b"")
    assert pubsub.publish("control", b"", {"only": "attributes"})


def test_failed_deliveries_are_redelivered_until_acked(pubsub: PubSub) -> None:
    with Receiver(failures=2) as flaky:
        pubsub.subscribe_push("compute", flaky.url)
        message_id = pubsub.publish("compute", b"entry")
        assert pubsub.wait_idle(10)

    assert flaky.ids() == [message_id] * 3
    assert pubsub.stats.delivered == 1
    assert pubsub.stats.redelivered == 2
    assert pubsub.dead_letters == ()


def a_closed_url() -> str:
    with Receiver() as gone:
        return gone.url


@pytest.mark.parametrize("reachable", [pytest.param(True, id="always-500"), pytest.param(False, id="unreachable")])
def test_deliveries_that_never_succeed_are_dead_lettered(pubsub: PubSub, reachable: bool) -> None:
    with Receiver(failures=100) as broken:
        pubsub.subscribe_push("compute", broken.url if reachable else a_closed_url())
        message_id = pubsub.publish("compute", b"entry")
        assert pubsub.wait_idle(10)

    [dead] = pubsub.dead_letters
    assert (dead.message.message_id, dead.attempts) == (message_id, FAST_RETRY.max_attempts)
    assert pubsub.stats.dead_lettered == 1
    assert pubsub.stats.delivered == 0


def test_duplicate_mode_delivers_every_message_twice(receiver: Receiver) -> None:
    broker = a_pubsub(chaos=Chaos(duplicate=1.0))
    broker.start()
    try:
        broker.subscribe_push("control", receiver.url)
        ids = [broker.publish("control", f"m{i}".encode()) for i in range(5)]
        assert broker.wait_idle(10)
        stats = broker.stats
    finally:
        broker.stop()

    assert receiver.ids() == sorted(ids * 2)
    assert (stats.duplicates, stats.delivered) == (5, 10)


def test_fail_rate_forces_redelivery_but_every_message_arrives_once(receiver: Receiver) -> None:
    broker = a_pubsub(chaos=Chaos(fail_rate=0.5), retry=RetryPolicy(FAST_RETRY.min_backoff, FAST_RETRY.max_backoff, 12))
    broker.start()
    try:
        broker.subscribe_push("control", receiver.url)
        ids = [broker.publish("control", f"m{i}".encode()) for i in range(10)]
        assert broker.wait_idle(20)
        stats = broker.stats
    finally:
        broker.stop()

    # Simulated failures happen before sending, so the endpoint sees each message exactly once.
    assert receiver.ids() == sorted(ids)
    assert stats.failed_attempts > 0
    assert stats.redelivered == stats.failed_attempts
    assert stats.delivered == 10


def test_a_functions_framework_cloudevent_function_decodes_the_delivery(pubsub: PubSub, tmp_path: Path) -> None:
    out = tmp_path / "received.jsonl"
    source = tmp_path / "main.py"
    source.write_text(
        "import base64, json, functions_framework\n"
        "@functions_framework.cloud_event\n"
        "def on_control(event):\n"
        "    payload = json.loads(base64.b64decode(event.data['message']['data']))\n"
        f"    with open({str(out)!r}, 'a') as f:\n"
        "        f.write(json.dumps({'id': event['id'], 'payload': payload}) + '\\n')\n"
    )
    app = functions_framework.create_app(target="on_control", source=str(source))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        pubsub.subscribe_push("control", f"http://127.0.0.1:{server.server_port}/")
        message_id = pubsub.publish("control", json.dumps({"v": 1, "kind": "tick"}).encode())
        assert pubsub.wait_idle(10)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    assert json.loads(out.read_text()) == {"id": message_id, "payload": {"v": 1, "kind": "tick"}}


def test_cloudevent_omits_empty_attributes_and_renders_publish_time_in_utc_milliseconds() -> None:
    subscription = PushSubscription("projects/p/subscriptions/s", "projects/p/topics/t", "http://x")
    published = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

    headers, body = cloud_event(subscription, Message("projects/p/topics/t", b"hi", {}, "42", published))

    assert headers["ce-time"] == "2026-01-02T03:04:05.678Z"
    assert json.loads(body) == {
        "message": {
            "data": "aGk=",
            "messageId": "42",
            "message_id": "42",
            "publishTime": "2026-01-02T03:04:05.678Z",
            "publish_time": "2026-01-02T03:04:05.678Z",
        },
        "subscription": "projects/p/subscriptions/s",
    }


def test_stop_is_idempotent_and_releases_ports() -> None:
    broker = a_pubsub()
    broker.start()
    broker.start()
    rest_url = broker.rest_url
    broker.stop()
    broker.stop()
    with pytest.raises(UnavailableError):
        broker.publish("control", b"late")
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{rest_url}/v1/projects/{PROJECT}/topics/control:publish", timeout=2)
