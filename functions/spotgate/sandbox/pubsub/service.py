"""Pub/Sub for the sandbox: topics that the real client libraries publish to, pushed on to the functions.

Three ways in, one way out. The gRPC ``Publisher`` service is what ``google.cloud.pubsub_v1.PublisherClient``
talks to when ``PUBSUB_EMULATOR_HOST`` is ``emulator_host`` (the production adapter, unchanged); the REST
``topics.publish`` is what the real VM agent script calls with its metadata token; ``publish()`` serves
sandbox components in this process (log sink, Scheduler, simulated agent). Every message then goes to each
push subscription of its topic as an Eventarc CloudEvent (see ``push``).

Like GCP, publishing to a topic that does not exist fails (NOT_FOUND): Terraform creates topics, so the
sandbox creates them up front (``topics=`` or ``create_topic``) and a misspelt name shows up in tests.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import logging
import random
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import grpc
from google.pubsub_v1 import types as pubsub_types

from spotgate.clock import SystemClock
from spotgate.errors import InvalidEventError, NotFoundError, UnavailableError
from spotgate.ports import Clock
from spotgate.sandbox.pubsub.push import (
    Chaos,
    DeadLetter,
    Message,
    PushDelivery,
    PushStats,
    PushSubscription,
    RetryPolicy,
)

log = logging.getLogger(__name__)

_REST_PUBLISH = re.compile(r"^/v1/(projects/[^/]+/topics/[^/:]+):publish$")


class MessagePublisher(Protocol):
    """What sandbox components need from Pub/Sub: publish bytes to a topic by short or full name."""

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str] | None = None) -> str: ...


class PubSub:
    """Topics and push subscriptions of one project, with gRPC and REST publish endpoints on loopback."""

    def __init__(
        self,
        project: str,
        *,
        topics: Iterable[str] = (),
        host: str = "127.0.0.1",
        grpc_port: int = 0,
        rest_port: int = 0,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        retry: RetryPolicy | None = None,
        chaos: Chaos | None = None,
        workers: int = 4,
    ) -> None:
        rng = rng or random.Random()
        self.project = project
        self._host = host
        self._ports = (grpc_port, rest_port)
        self._clock = clock or SystemClock()
        self._ids = itertools.count(rng.randrange(10**15, 9 * 10**15))
        self._subscriptions: dict[str, list[PushSubscription]] = {}
        self._lock = threading.Lock()
        self._push = PushDelivery(retry=retry, chaos=chaos, rng=rng, workers=workers)
        self._grpc: Any = None
        self._grpc_port = 0
        self._grpc_pool: ThreadPoolExecutor | None = None
        self._rest: ThreadingHTTPServer | None = None
        self._rest_thread: threading.Thread | None = None
        for topic in topics:
            self.create_topic(topic)

    # lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Serve gRPC and REST and start push delivery; a no-op if running."""
        with self._lock:
            if self._grpc is not None:
                return
            self._push.start()
            self._grpc_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sandbox-pubsub-grpc")
            self._grpc, self._grpc_port = self._serve_grpc(self._grpc_pool)
            self._rest = ThreadingHTTPServer((self._host, self._ports[1]), _rest_handler(self._publish_rest))
            self._rest.daemon_threads = True
            self._rest_thread = threading.Thread(target=self._rest.serve_forever, name="sandbox-pubsub-rest")
            self._rest_thread.start()
        log.info("pubsub listening", extra={"emulator_host": self.emulator_host, "rest_url": self.rest_url})

    def stop(self) -> None:
        """Stop serving and delivering, release ports and threads; idempotent."""
        with self._lock:
            server, pool, rest, thread = self._grpc, self._grpc_pool, self._rest, self._rest_thread
            self._grpc, self._grpc_pool, self._rest, self._rest_thread = None, None, None, None
        if server is not None:
            server.stop(grace=None).wait(5)
        if pool is not None:
            pool.shutdown(wait=True)
        if rest is not None:
            rest.shutdown()
            rest.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._push.stop()

    def _serve_grpc(self, pool: ThreadPoolExecutor) -> tuple[Any, int]:
        server = grpc.server(pool)
        handlers = {
            "Publish": grpc.unary_unary_rpc_method_handler(
                self._publish_grpc,
                request_deserializer=pubsub_types.PublishRequest.deserialize,
                response_serializer=pubsub_types.PublishResponse.serialize,
            ),
            "GetTopic": grpc.unary_unary_rpc_method_handler(
                self._get_topic_grpc,
                request_deserializer=pubsub_types.GetTopicRequest.deserialize,
                response_serializer=pubsub_types.Topic.serialize,
            ),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("google.pubsub.v1.Publisher", handlers),))
        port = server.add_insecure_port(f"{self._host}:{self._ports[0]}")
        server.start()
        return server, int(port)

    @property
    def emulator_host(self) -> str:
        """``host:port`` of the gRPC endpoint, the value for ``PUBSUB_EMULATOR_HOST``."""
        if self._grpc is None:
            raise RuntimeError("pubsub is not started")
        return f"{self._host}:{self._grpc_port}"

    @property
    def rest_url(self) -> str:
        """Base URL of the REST API (``{rest_url}/v1/projects/P/topics/T:publish``)."""
        if self._rest is None:
            raise RuntimeError("pubsub is not started")
        return f"http://{self._host}:{self._rest.server_address[1]}"

    # topics and subscriptions ----------------------------------------------------------------------------
    def topic_path(self, topic: str) -> str:
        """The full name of a topic given by short or full name."""
        return topic if topic.startswith("projects/") else f"projects/{self.project}/topics/{topic}"

    def create_topic(self, topic: str) -> str:
        """Create the topic if missing and return its full name."""
        path = self.topic_path(topic)
        with self._lock:
            self._subscriptions.setdefault(path, [])
        return path

    def subscribe_push(self, topic: str, url: str) -> PushSubscription:
        """Push every later message of ``topic`` to ``url``, like an Eventarc trigger. Raises NotFoundError."""
        path = self.topic_path(topic)
        with self._lock:
            subscriptions = self._subscriptions_of(path)
            short = path.rsplit("/", 1)[1]
            name = f"projects/{self.project}/subscriptions/eventarc-sandbox-{short}-sub-{len(subscriptions) + 1:03d}"
            subscription = PushSubscription(name, path, url)
            subscriptions.append(subscription)
        return subscription

    def _subscriptions_of(self, path: str) -> list[PushSubscription]:
        try:
            return self._subscriptions[path]
        except KeyError:
            raise NotFoundError(f"Resource not found (resource={path.rsplit('/', 1)[-1]}).") from None

    # publishing ------------------------------------------------------------------------------------------
    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str] | None = None) -> str:
        """Publish one message and return its id.

        Raises NotFoundError (no such topic), InvalidEventError (empty message) or UnavailableError (stopped).
        """
        return self._publish_batch(self.topic_path(topic), [(data, dict(attributes or {}))])[0]

    def _publish_batch(self, path: str, messages: list[tuple[bytes, dict[str, str]]]) -> list[str]:
        if not messages or any(not data and not attributes for data, attributes in messages):
            raise InvalidEventError("Some messages contain neither data nor attributes; one is required.")
        with self._lock:
            if self._grpc is None:
                raise UnavailableError("pubsub is not running")
            subscriptions = list(self._subscriptions_of(path))
            ids = [str(next(self._ids)) for _ in messages]
        now = self._clock.now()
        for message_id, (data, attributes) in zip(ids, messages, strict=True):
            message = Message(path, data, attributes, message_id, now)
            for subscription in subscriptions:
                self._push.deliver(subscription, message)
        return ids

    def _publish_grpc(self, request: pubsub_types.PublishRequest, context: Any) -> pubsub_types.PublishResponse:
        batch = [(bytes(m.data), dict(m.attributes)) for m in request.messages]
        try:
            ids = self._publish_batch(request.topic, batch)
        except NotFoundError as e:
            context.abort(grpc.StatusCode.NOT_FOUND, str(e))
        except InvalidEventError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        return pubsub_types.PublishResponse(message_ids=ids)

    def _get_topic_grpc(self, request: pubsub_types.GetTopicRequest, context: Any) -> pubsub_types.Topic:
        with self._lock:
            if request.topic not in self._subscriptions:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Resource not found (resource={request.topic}).")
        return pubsub_types.Topic(name=request.topic)

    def _publish_rest(self, path: str, authorization: str, body: bytes) -> tuple[int, dict[str, Any]]:
        match = _REST_PUBLISH.match(path)
        if match is None:
            return _google_error(HTTPStatus.NOT_FOUND, f"no such method: {path}")
        if not authorization.startswith("Bearer "):
            return _google_error(HTTPStatus.UNAUTHORIZED, "Request is missing required authentication credential.")
        try:
            batch = [_decode_rest_message(m) for m in json.loads(body or b"{}").get("messages", [])]
            return HTTPStatus.OK, {"messageIds": self._publish_batch(match.group(1), batch)}
        except NotFoundError as e:
            return _google_error(HTTPStatus.NOT_FOUND, str(e))
        except (InvalidEventError, ValueError, AttributeError, TypeError) as e:
            return _google_error(HTTPStatus.BAD_REQUEST, f"Invalid publish request: {e}")

    # push delivery controls ------------------------------------------------------------------------------
    @property
    def chaos(self) -> Chaos:
        return self._push.chaos

    @chaos.setter
    def chaos(self, value: Chaos) -> None:
        self._push.chaos = value

    @property
    def stats(self) -> PushStats:
        return self._push.stats

    @property
    def dead_letters(self) -> tuple[DeadLetter, ...]:
        return self._push.dead_letters

    def wait_idle(self, timeout: float) -> bool:
        """True once every published message is acked or dead-lettered; False after ``timeout`` seconds."""
        return self._push.wait_idle(timeout)


def _decode_rest_message(message: Mapping[str, Any]) -> tuple[bytes, dict[str, str]]:
    try:
        data = base64.b64decode(message.get("data", ""), validate=True)
    except binascii.Error as e:
        raise InvalidEventError(f"message data is not base64: {e}") from e
    return data, {str(k): str(v) for k, v in (message.get("attributes") or {}).items()}


def _google_error(status: HTTPStatus, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": int(status), "message": message, "status": _STATUS_NAMES[status]}}


_STATUS_NAMES = {
    HTTPStatus.BAD_REQUEST: "INVALID_ARGUMENT",
    HTTPStatus.UNAUTHORIZED: "UNAUTHENTICATED",
    HTTPStatus.NOT_FOUND: "NOT_FOUND",
}


def _rest_handler(
    publish: Callable[[str, str, bytes], tuple[int, dict[str, Any]]],
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, answer = publish(self.path.split("?", 1)[0], self.headers.get("Authorization", ""), body)
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("pubsub rest request", extra={"request": format % args})

    return Handler
