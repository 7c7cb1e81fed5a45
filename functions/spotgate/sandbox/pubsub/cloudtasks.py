"""The sandbox's Cloud Tasks: HTTP tasks the real ``tasks_v2.CloudTasksClient`` creates, delivered when due.

The REST subset the control plane uses: ``POST /v2/projects/P/locations/L/queues/Q/tasks`` (``createTask``,
with the client's ``$alt=json;enum-encoding=int``, so ``httpMethod`` arrives as an integer) and ``GET`` of a
task. Modelled on Cloud Tasks where spotgate depends on it:

* a task is dispatched at its ``scheduleTime`` (now if absent): an HTTP request to ``httpRequest.url`` with
  its method, headers and body, plus ``Authorization: Bearer <token>`` when it asks for an ``oauthToken``
  (the sandbox's metadata-style access token stands in for the service account's);
* a task name is unique: creating one whose name is pending or already dispatched answers 409
  ``ALREADY_EXISTS`` (Cloud Tasks keeps names of finished tasks for about an hour, longer than any sandbox
  run), which is how spotgate deduplicates a pool's wake-ups;
* a dispatch answered with anything but 2xx, or not answered, is retried with a doubling backoff
  (``RETRY_DELAYS``), like a queue's default retry config, then dropped with a warning;
* an unknown queue is 404 ``NOT_FOUND`` (Terraform creates queues; so does the sandbox, up front).
"""

from __future__ import annotations

import base64
import binascii
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from flask import Flask, Response, jsonify, request

from spotgate.sandbox.devstack.http_server import LocalServer

log = logging.getLogger(__name__)

RETRY_DELAYS = (0.1, 0.2, 0.4, 0.8, 1.6)  # seconds between dispatch attempts
DISPATCH_TIMEOUT = 10.0
_METHODS = {1: "POST", 2: "GET", 3: "HEAD", 4: "PUT", 5: "DELETE", 6: "PATCH", 7: "OPTIONS"}


@dataclass(frozen=True, slots=True)
class HttpTask:
    """One task as created: where to call, what to send, when."""

    name: str
    url: str
    method: str
    headers: dict[str, str]
    body: bytes
    due: float  # epoch seconds
    oauth: bool
    created: float

    def json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scheduleTime": _rfc3339(self.due),
            "createTime": _rfc3339(self.created),
            "httpRequest": {"url": self.url, "httpMethod": self.method, "headers": self.headers},
            "view": "BASIC",
        }


class TaskError(Exception):
    """A createTask the API refuses: ``status`` is the HTTP code, ``reason`` the google.rpc status."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class CloudTasks:
    """Queues of ``project``/``location``; ``token()`` supplies the bearer token of OAuth tasks."""

    def __init__(self, project: str, location: str, queues: Iterable[str], token: Callable[[], str]) -> None:
        self.project = project
        self.location = location
        self._queues = {self.queue_path(q) for q in queues}
        self._token = token
        self._lock = threading.Condition()
        self._due: list[tuple[float, int, HttpTask]] = []
        self._order = itertools.count()
        self._names: set[str] = set()
        self._delivered: list[tuple[HttpTask, int]] = []  # (task, HTTP status of the final attempt)
        self._closing = False
        self._server: LocalServer | None = None
        self._thread: threading.Thread | None = None

    def queue_path(self, queue: str) -> str:
        return f"projects/{self.project}/locations/{self.location}/queues/{queue}"

    @property
    def url(self) -> str:
        if self._server is None:
            raise TaskError(503, "UNAVAILABLE", "the sandbox's Cloud Tasks is not started")
        return self._server.url

    def start(self) -> None:
        self._server = LocalServer(create_cloudtasks_app(self), name="sandbox-cloudtasks")
        self._thread = threading.Thread(target=self._dispatch_loop, name="sandbox-cloudtasks-dispatch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and dispatching; pending tasks are dropped. Idempotent."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=DISPATCH_TIMEOUT + 5)
            self._thread = None
        if self._server is not None:
            self._server.close()
            self._server = None

    def create(self, queue: str, body: dict[str, Any]) -> HttpTask:
        """Accept a task for ``queue`` (a full path). Raises TaskError (404, 409, 400)."""
        if queue not in self._queues:
            raise TaskError(404, "NOT_FOUND", f"Queue does not exist: {queue}")
        task = _parse_task(queue, body.get("task"), next(self._order))
        with self._lock:
            if task.name in self._names:
                raise TaskError(409, "ALREADY_EXISTS", "Requested entity already exists")
            self._names.add(task.name)
            heapq.heappush(self._due, (task.due, next(self._order), task))
            self._lock.notify_all()
        return task

    def delivered(self) -> list[tuple[HttpTask, int]]:
        """Every dispatched task with the HTTP status of its last attempt, in dispatch order."""
        with self._lock:
            return list(self._delivered)

    def pending(self) -> list[HttpTask]:
        with self._lock:
            return [task for _, _, task in sorted(self._due)]

    def _dispatch_loop(self) -> None:
        while (task := self._next_due()) is not None:
            status = self._dispatch(task)
            with self._lock:
                self._delivered.append((task, status))
                self._lock.notify_all()

    def _next_due(self) -> HttpTask | None:
        with self._lock:
            while not self._closing:
                wait = self._due[0][0] - time.time() if self._due else None
                if wait is not None and wait <= 0:
                    return heapq.heappop(self._due)[2]
                self._lock.wait(wait)
            return None

    def _dispatch(self, task: HttpTask) -> int:
        headers = dict(task.headers)
        if task.oauth:
            headers["Authorization"] = f"Bearer {self._token()}"
        status = 0
        for delay in (*RETRY_DELAYS, None):
            try:
                status = requests.request(
                    task.method, task.url, headers=headers, data=task.body, timeout=DISPATCH_TIMEOUT
                ).status_code
            except requests.RequestException as e:
                log.warning("task dispatch failed: %s", e, extra={"task": task.name})
            if 200 <= status < 300 or delay is None or self._closing:
                break
            time.sleep(delay)
        if not 200 <= status < 300:
            log.warning("task dropped after its retries", extra={"task": task.name, "status": status})
        return status


def create_cloudtasks_app(tasks: CloudTasks) -> Flask:
    app = Flask("spotgate.sandbox.pubsub.cloudtasks")
    queue_path = "/v2/projects/<project>/locations/<location>/queues/<queue>"

    @app.post(f"{queue_path}/tasks")
    def create_task(project: str, location: str, queue: str) -> Any:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise TaskError(400, "INVALID_ARGUMENT", "the request body must be a JSON object")
        return tasks.create(f"projects/{project}/locations/{location}/queues/{queue}", body).json()

    @app.errorhandler(TaskError)
    def refused(error: TaskError) -> Response:
        response = jsonify({"error": {"code": error.status, "message": str(error), "status": error.reason}})
        response.status_code = error.status
        return response

    return app


def _parse_task(queue: str, task: object, serial: int) -> HttpTask:
    if not isinstance(task, dict) or not isinstance(task.get("httpRequest"), dict):
        raise TaskError(400, "INVALID_ARGUMENT", "task.httpRequest is required (only HTTP tasks are emulated)")
    http = task["httpRequest"]
    url = http.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise TaskError(400, "INVALID_ARGUMENT", "task.httpRequest.url must be an http(s) URL")
    name = task.get("name") or f"{queue}/tasks/{serial}"
    if not isinstance(name, str) or not name.startswith(f"{queue}/tasks/"):
        raise TaskError(400, "INVALID_ARGUMENT", f"task.name must be {queue}/tasks/TASK_ID")
    return HttpTask(
        name=name,
        url=url,
        method=_method(http.get("httpMethod", "POST")),
        headers={str(k): str(v) for k, v in (http.get("headers") or {}).items()},
        body=_body(http.get("body", "")),
        due=_epoch(task.get("scheduleTime")),
        oauth="oauthToken" in http,
        created=time.time(),
    )


def _method(value: object) -> str:
    if isinstance(value, int) and value in _METHODS:
        return _METHODS[value]
    if isinstance(value, str) and value in _METHODS.values():
        return value
    raise TaskError(400, "INVALID_ARGUMENT", f"unknown httpMethod {value!r}")


def _body(value: object) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise TaskError(400, "INVALID_ARGUMENT", "task.httpRequest.body must be base64") from None


def _epoch(value: object) -> float:
    if value in (None, ""):
        return time.time()
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise TaskError(400, "INVALID_ARGUMENT", f"scheduleTime {value!r} is not RFC 3339") from None


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
