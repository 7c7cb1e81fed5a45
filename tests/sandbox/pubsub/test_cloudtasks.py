"""The real Cloud Tasks client schedules spotgate's wake-ups on the sandbox's Cloud Tasks, which delivers them
at the due time as a Pub/Sub publish of a per-pool tick, once per pool and due-time bucket (issue 9, 13)."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from spotgate.adapters.cloud_tasks_scheduler import CloudTasksScheduler, bucket_end
from spotgate.errors import NotFoundError
from spotgate.sandbox.pubsub.cloudtasks import CloudTasks
from tests.sandbox.sandbox_support import wait_until

PROJECT = "spotgate-local"
TOPIC = f"projects/{PROJECT}/topics/spotgate-control"


class PublishSink:
    """Plays Pub/Sub's REST ``topics.publish``: records what each call published and with which token."""

    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, object], str]] = []  # (path, message, authorization)
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                for message in body["messages"]:
                    decoded = json.loads(base64.b64decode(message["data"]))
                    sink.published.append((self.path, decoded, self.headers.get("Authorization", "")))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"messageIds": ["1"]}')

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def sink() -> Iterator[PublishSink]:
    sink = PublishSink()
    yield sink
    sink.close()


@pytest.fixture
def tasks() -> Iterator[CloudTasks]:
    tasks = CloudTasks(PROJECT, "us-central1", ["spotgate-wake"], token=lambda: "sandbox-access-token")
    tasks.start()
    yield tasks
    tasks.stop()


def a_scheduler(tasks: CloudTasks, sink: PublishSink, queue: str = "spotgate-wake") -> CloudTasksScheduler:
    return CloudTasksScheduler(
        tasks.queue_path(queue),
        TOPIC,
        f"spotgate-tasks@{PROJECT}.iam.gserviceaccount.com",
        pubsub_endpoint=sink.url,
        endpoint=tasks.url,
    )


def test_a_wake_up_is_published_as_a_pool_tick_at_its_due_time(tasks: CloudTasks, sink: PublishSink) -> None:
    due = datetime.now(UTC) + timedelta(seconds=1)
    a_scheduler(tasks, sink).schedule("chat", due)
    assert not sink.published  # not before it is due
    assert wait_until(lambda: bool(sink.published), timeout=20)
    path, message, authorization = sink.published[0]
    assert path == f"/v1/{TOPIC}:publish"
    assert message["kind"] == "tick"
    assert message["pool"] == "chat"
    assert message["v"] == 1
    assert authorization == "Bearer sandbox-access-token"
    assert time.time() >= bucket_end(due).timestamp()


def test_a_burst_of_wake_ups_for_one_pool_and_moment_schedules_one_task(tasks: CloudTasks, sink: PublishSink) -> None:
    scheduler = a_scheduler(tasks, sink)
    due = bucket_end(datetime.now(UTC) + timedelta(seconds=30))
    for jitter in range(5):  # five reconciles want the same moment, give or take
        scheduler.schedule("chat", due - timedelta(seconds=jitter))
    scheduler.schedule("embed", due)
    assert sorted(t.name.rsplit("/", 1)[-1] for t in tasks.pending()) == [
        f"wake-chat-{int(due.timestamp())}",
        f"wake-embed-{int(due.timestamp())}",
    ]


def test_an_unknown_queue_is_a_clear_error(tasks: CloudTasks, sink: PublishSink) -> None:
    with pytest.raises(NotFoundError, match="Queue does not exist"):
        a_scheduler(tasks, sink, queue="no-such-queue").schedule("chat", datetime.now(UTC))


def test_a_malformed_task_is_refused_with_what_is_wrong(tasks: CloudTasks) -> None:
    answer = requests.post(
        f"{tasks.url}/v2/{tasks.queue_path('spotgate-wake')}/tasks", json={"task": {"name": "x"}}, timeout=5
    )
    assert answer.status_code == 400
    assert "httpRequest" in answer.json()["error"]["message"]
