"""Eventarc-style push delivery: each Pub/Sub message POSTed to a function as a binary-mode CloudEvent.

The functions are deployed behind Eventarc Pub/Sub triggers, so in the sandbox they must receive exactly
what Eventarc sends (headers ``ce-*``, body ``{"message": …, "subscription": …}``; wire-formats §0.4, §2.1)
and live with the same delivery contract: at least once, in no particular order, redelivered with
exponential backoff until acknowledged by a 2xx. Chaos controls (duplicates, failed attempts) make the
"every handler is idempotent" rule testable. Chaos decisions are derived from a salt drawn from the
injected ``random.Random`` and the delivery's identity, so a seed reproduces them whatever thread runs first.
"""

from __future__ import annotations

import base64
import heapq
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import urllib3

from spotgate.errors import ConfigError

log = logging.getLogger(__name__)

CLOUDEVENT_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
_DEAD_LETTERS_KEPT = 1000  # the newest ones; a long dev session with a broken function must not grow without bound


@dataclass(frozen=True, slots=True)
class Message:
    """A published message; ``topic`` is the full ``projects/P/topics/T`` name."""

    topic: str
    data: bytes
    attributes: Mapping[str, str]
    message_id: str
    publish_time: datetime


@dataclass(frozen=True, slots=True)
class PushSubscription:
    """``name`` is the full ``projects/P/subscriptions/S`` name; ``url`` receives the CloudEvents."""

    name: str
    topic: str
    url: str


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff doubles from ``min_backoff`` up to ``max_backoff``; after ``max_attempts`` the message is dropped.

    ``ack_deadline`` bounds one attempt (connect + response), like a push endpoint's ack deadline.
    """

    min_backoff: timedelta = timedelta(seconds=1)
    max_backoff: timedelta = timedelta(seconds=10)
    max_attempts: int = 8
    ack_deadline: timedelta = timedelta(seconds=60)

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.min_backoff > self.max_backoff or self.ack_deadline <= timedelta(0):
            raise ConfigError(f"invalid push retry policy {self}")

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.max_backoff.total_seconds(), self.min_backoff.total_seconds() * 2.0 ** (attempt - 1))


@dataclass(frozen=True, slots=True)
class Chaos:
    """Fractions in [0, 1]: ``duplicate`` of messages delivered twice, ``fail_rate`` of attempts failed unsent."""

    duplicate: float = 0.0
    fail_rate: float = 0.0

    def __post_init__(self) -> None:
        if not (0.0 <= self.duplicate <= 1.0 and 0.0 <= self.fail_rate <= 1.0):
            raise ConfigError(f"chaos fractions must be within [0, 1]: {self}")


@dataclass(frozen=True, slots=True)
class PushStats:
    """Counters since start: acked deliveries, re-sent attempts, injected duplicates, failures, drops."""

    delivered: int = 0
    redelivered: int = 0
    duplicates: int = 0
    failed_attempts: int = 0
    dead_lettered: int = 0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    subscription: str
    message: Message
    attempts: int
    last_error: str


@dataclass(frozen=True, slots=True)
class _Attempt:
    subscription: PushSubscription
    message: Message
    number: int = 1
    copy: int = 0  # 1 for a chaos duplicate, so its fate is drawn independently of the original's

    def key(self, purpose: str) -> str:
        return f"{purpose}/{self.subscription.name}/{self.message.message_id}/{self.copy}/{self.number}"


def format_time(at: datetime) -> str:
    """RFC 3339 UTC with milliseconds, as Pub/Sub renders ``publishTime``."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def cloud_event(subscription: PushSubscription, message: Message) -> tuple[dict[str, str], bytes]:
    """The headers and body of the binary-mode CloudEvent Eventarc sends for ``message``."""
    published = format_time(message.publish_time)
    body: dict[str, object] = {"data": base64.b64encode(message.data).decode("ascii")}
    if message.attributes:
        body["attributes"] = dict(message.attributes)
    body |= {"messageId": message.message_id, "message_id": message.message_id}
    body |= {"publishTime": published, "publish_time": published}
    headers = {
        "ce-id": message.message_id,
        "ce-source": f"//pubsub.googleapis.com/{message.topic}",
        "ce-specversion": "1.0",
        "ce-time": published,
        "ce-type": CLOUDEVENT_TYPE,
        "content-type": "application/json",
        "accept": "application/json",
        "from": "noreply@google.com",
    }
    return headers, json.dumps({"message": body, "subscription": subscription.name}).encode()


@dataclass(slots=True)
class _Counters:
    delivered: int = 0
    redelivered: int = 0
    duplicates: int = 0
    failed_attempts: int = 0
    dead_lettered: int = 0
    dead: deque[DeadLetter] = field(default_factory=lambda: deque(maxlen=_DEAD_LETTERS_KEPT))


class PushDelivery:
    """Delivers messages to push subscriptions from a small thread pool, retrying on failure."""

    def __init__(
        self, *, retry: RetryPolicy | None = None, chaos: Chaos | None = None, rng: random.Random, workers: int = 4
    ) -> None:
        self._retry = retry or RetryPolicy()
        self._chaos = chaos or Chaos()
        self._salt = rng.getrandbits(64)
        self._workers = workers
        self._http = urllib3.PoolManager(maxsize=workers, retries=False)
        self._due: list[tuple[float, int, _Attempt]] = []
        self._seq = 0
        self._pending = 0
        self._counters = _Counters()
        self._cond = threading.Condition()
        self._running = False
        self._dispatcher: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    def start(self) -> None:
        """Start the dispatcher and the worker pool; a no-op if running."""
        with self._cond:
            if self._running:
                return
            self._running = True
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="sandbox-push")
            self._dispatcher = threading.Thread(target=self._dispatch, name="sandbox-push-dispatch", daemon=True)
            self._dispatcher.start()

    def stop(self) -> None:
        """Stop delivering (undelivered messages are discarded) and join every thread; idempotent."""
        with self._cond:
            if not self._running:
                return
            self._running = False
            dispatcher, pool, self._dispatcher, self._pool = self._dispatcher, self._pool, None, None
            self._cond.notify_all()
        if dispatcher is not None:
            dispatcher.join(timeout=5)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        with self._cond:
            self._due.clear()
            self._pending = 0
            self._cond.notify_all()
        self._http.clear()

    @property
    def chaos(self) -> Chaos:
        return self._chaos

    @chaos.setter
    def chaos(self, value: Chaos) -> None:
        self._chaos = value

    @property
    def stats(self) -> PushStats:
        c = self._counters
        with self._cond:
            return PushStats(c.delivered, c.redelivered, c.duplicates, c.failed_attempts, c.dead_lettered)

    @property
    def dead_letters(self) -> tuple[DeadLetter, ...]:
        """The newest dropped messages (at most 1000), oldest first."""
        with self._cond:
            return tuple(self._counters.dead)

    def deliver(self, subscription: PushSubscription, message: Message) -> None:
        """Queue ``message`` for ``subscription`` (twice, if chaos draws a duplicate)."""
        first = _Attempt(subscription, message)
        copies = [first]
        if self._draw(first.key("duplicate")) < self._chaos.duplicate:
            copies.append(replace(first, copy=1))
        with self._cond:
            self._counters.duplicates += len(copies) - 1
            self._pending += len(copies)
            for attempt in copies:
                self._schedule(attempt, 0.0)

    def wait_idle(self, timeout: float) -> bool:
        """Block until every queued message is acked or dropped; False if ``timeout`` seconds pass first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout=timeout)

    def _schedule(self, attempt: _Attempt, delay: float) -> None:
        self._seq += 1
        heapq.heappush(self._due, (time.monotonic() + delay, self._seq, attempt))
        self._cond.notify_all()

    def _dispatch(self) -> None:
        while True:
            with self._cond:
                attempt = self._next_due()
                if attempt is None:
                    return
                pool = self._pool
            if pool is not None:
                pool.submit(self._attempt, attempt)

    def _next_due(self) -> _Attempt | None:
        """Wait (holding the condition) for the earliest due attempt; None once stopped."""
        while self._running:
            if self._due and self._due[0][0] <= time.monotonic():
                return heapq.heappop(self._due)[2]
            self._cond.wait(timeout=self._due[0][0] - time.monotonic() if self._due else None)
        return None

    def _attempt(self, attempt: _Attempt) -> None:
        error = self._send(attempt)
        with self._cond:
            if attempt.number > 1:
                self._counters.redelivered += 1
            if error is None:
                self._counters.delivered += 1
                self._settle()
            elif attempt.number >= self._retry.max_attempts:
                self._dead_letter(attempt, error)
                self._settle()
            else:
                self._counters.failed_attempts += 1
                self._schedule(replace(attempt, number=attempt.number + 1), self._retry.backoff(attempt.number))

    def _send(self, attempt: _Attempt) -> str | None:
        """POST the CloudEvent; None when acked, else why not."""
        if self._draw(attempt.key("fail")) < self._chaos.fail_rate:
            return "chaos: simulated delivery failure"
        headers, body = cloud_event(attempt.subscription, attempt.message)
        deadline = urllib3.Timeout(total=self._retry.ack_deadline.total_seconds())
        try:
            response = self._http.request(
                "POST", attempt.subscription.url, body=body, headers=headers, timeout=deadline, redirect=False
            )
        except urllib3.exceptions.HTTPError as e:
            return f"push endpoint unreachable: {e}"
        return None if 200 <= response.status < 300 else f"push endpoint answered HTTP {response.status}"

    def _dead_letter(self, attempt: _Attempt, error: str) -> None:
        self._counters.failed_attempts += 1
        self._counters.dead_lettered += 1
        self._counters.dead.append(DeadLetter(attempt.subscription.name, attempt.message, attempt.number, error))
        log.warning(
            "push delivery gave up; message dropped",
            extra={
                "subscription": attempt.subscription.name,
                "message_id": attempt.message.message_id,
                "attempts": attempt.number,
                "error": error,
            },
        )

    def _settle(self) -> None:
        self._pending -= 1
        if self._pending <= 0:
            self._pending = 0
            self._cond.notify_all()

    def _draw(self, key: str) -> float:
        return random.Random(f"{self._salt}/{key}").random()
