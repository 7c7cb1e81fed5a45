"""The callers of a chaos run: client threads using the official ``openai`` SDK against the gateway.

Each request is recorded from the caller's side of the wire, which is what the verdict cares about: did it
fail before its first byte (an HTTP error, a refused or broken connection before the response began, or a
held stream that ended with "no backend"), was it cut after the answer had started, or did it complete.
``with_streaming_response`` is used for both kinds so the response headers (and ``x-spotgate-backend``)
arrive before the body is read: an error while *entering* is before the first byte, one while *reading* is
after. Streams are read as SSE lines (what the SDK parses) so that a stream the gateway continued on another
backend after its VM was reclaimed (its ``: spotgate-continued`` comment) is counted as such.
Pools with ``min_ready`` 0 get bursts separated by quiet stretches longer than their idle timeout, so
every run also exercises scale-to-zero and the wake path.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx2
import openai
from openai import OpenAI

from spotgate.fleet import FleetConfig, PoolSpec
from spotgate.sandbox.chaos.record import Outcome, RequestRecord
from spotgate.sandbox.chaos.spans import Span

log = logging.getLogger(__name__)

CUT_CODES = frozenset({"stream_interrupted"})  # the gateway's code for an answer that broke after it began
CONTINUED_COMMENT = "spotgate-continued"  # the gateway's SSE comment before [DONE] when it continued an answer


@dataclass(frozen=True, slots=True)
class Caller:
    """One client thread's role: which pool, streaming or not, and when it may send (``None``: always)."""

    pool: PoolSpec
    stream: bool
    active: tuple[Span, ...] | None


def plan_callers(fleet: FleetConfig, clients: int, rng: random.Random, start: float, seconds: float) -> list[Caller]:
    """Half the clients stream, half do not; pools take turns; pools that may sleep get bursts."""
    bursts = {pool.name: bursts_for(pool, rng, start, seconds) for pool in fleet.pools if pool.min_ready == 0}
    callers = []
    for i in range(clients):
        pool = fleet.pools[(i // 2) % len(fleet.pools)]
        callers.append(Caller(pool, stream=i % 2 == 0, active=bursts.get(pool.name)))
    return callers


def bursts_for(pool: PoolSpec, rng: random.Random, start: float, seconds: float) -> tuple[Span, ...]:
    """Active stretches alternating with quiet ones long enough for the pool to scale to zero."""
    idle = pool.idle_timeout.total_seconds()
    spans, at = [], start
    while at < start + seconds:
        length = rng.uniform(idle * 0.5, idle * 0.9)
        spans.append(Span(at, min(at + length, start + seconds)))
        at += length + rng.uniform(idle * 1.4, idle * 1.8)
    return tuple(spans)


class Traffic:
    """The client threads; ``start``, later ``stop`` (waits for in-flight requests), then ``records``."""

    def __init__(
        self, base_url: str, api_key: str, callers: list[Caller], rng: random.Random, *, timeout: float = 90.0
    ) -> None:
        self._client = OpenAI(base_url=base_url + "/v1", api_key=api_key, max_retries=0, timeout=timeout)
        self._callers = callers
        self._seeds = [rng.getrandbits(32) for _ in callers]
        self._timeout = timeout
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._records: list[RequestRecord] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        for i, (caller, seed) in enumerate(zip(self._callers, self._seeds, strict=True)):
            thread = threading.Thread(target=self._run, args=(caller, random.Random(seed)), name=f"chaos-client-{i}")
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Send no new requests; wait (bounded by the client timeout) for the ones in flight."""
        self._stop.set()
        deadline = time.monotonic() + self._timeout + 5
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._client.close()

    def records(self) -> tuple[RequestRecord, ...]:
        with self._lock:
            return tuple(sorted(self._records, key=lambda r: r.start))

    def _run(self, caller: Caller, rng: random.Random) -> None:
        send = self._stream if caller.stream else self._complete
        while not self._stop.is_set():
            if caller.active is not None and not _within(caller.active, time.time()):
                self._stop.wait(0.1)
                continue
            record = send(caller.pool, _request(caller.pool, rng, stream=caller.stream))
            with self._lock:
                self._records.append(record)
            self._stop.wait(rng.uniform(0.05, 0.3))

    def _stream(self, pool: PoolSpec, body: dict[str, Any]) -> RequestRecord:
        """One streamed answer, read as SSE lines so the gateway's ``: spotgate-continued`` comment is seen."""
        start, backend, seen = time.time(), None, _Stream()
        record = _recorder(pool.name, stream=True, start=start)
        try:
            with self._client.chat.completions.with_streaming_response.create(**body) as response:
                backend = response.headers.get("x-spotgate-backend")
                try:
                    for line in response.iter_lines():
                        seen.take(line)
                except httpx2.HTTPError as e:
                    outcome = Outcome.CUT if seen.pieces > 0 else Outcome.FAILED_BEFORE_FIRST_BYTE
                    return record(outcome, backend, _describe(e))
        except (openai.APIError, httpx2.HTTPError) as e:
            return record(Outcome.FAILED_BEFORE_FIRST_BYTE, backend, _describe(e))
        if seen.error is not None:
            cut = seen.pieces > 0 or seen.error.get("code") in CUT_CODES
            message = f"APIError: {str(seen.error.get('message', ''))[:200]}"
            return record(Outcome.CUT if cut else Outcome.FAILED_BEFORE_FIRST_BYTE, backend, message)
        if not seen.finished:  # ended without a finish_reason: truncated, even if no error said so
            outcome = Outcome.CUT if seen.pieces else Outcome.FAILED_BEFORE_FIRST_BYTE
            return record(outcome, backend, "stream ended early")
        return record(Outcome.OK, backend, "", continued=seen.continued)

    def _complete(self, pool: PoolSpec, body: dict[str, Any]) -> RequestRecord:
        start, backend = time.time(), None
        record = _recorder(pool.name, stream=False, start=start)
        try:
            with self._client.chat.completions.with_streaming_response.create(**body) as response:
                backend = response.headers.get("x-spotgate-backend")
                try:
                    response.parse()
                except (openai.APIError, httpx2.HTTPError) as e:
                    return record(Outcome.CUT, backend, _describe(e))
        except (openai.APIError, httpx2.HTTPError) as e:
            return record(Outcome.FAILED_BEFORE_FIRST_BYTE, backend, _describe(e))
        return record(Outcome.OK, backend, "")


class _Stream:
    """What a caller learns from an SSE stream's lines: tokens, finish, an error event, a continuation."""

    def __init__(self) -> None:
        self.pieces = 0
        self.finished = False
        self.continued = False
        self.error: dict[str, Any] | None = None

    def take(self, line: str) -> None:
        if line.startswith(f": {CONTINUED_COMMENT}"):
            self.continued = True
        if not line.startswith("data: {"):
            return
        chunk = json.loads(line[len("data: ") :])
        if isinstance(chunk.get("error"), dict):
            self.error = chunk["error"]
        for choice in chunk.get("choices") or []:
            self.pieces += bool((choice.get("delta") or {}).get("content"))
            self.finished = self.finished or bool(choice.get("finish_reason"))


def _recorder(pool: str, *, stream: bool, start: float) -> Callable[..., RequestRecord]:
    def record(outcome: Outcome, backend: str | None, error: str, *, continued: bool = False) -> RequestRecord:
        return RequestRecord(pool, stream, start, time.time(), outcome, backend, error, continued)

    return record


def _request(pool: PoolSpec, rng: random.Random, *, stream: bool) -> dict[str, Any]:
    """A chat completion; streams are long enough (hundreds of tokens) to be caught by a reclaim."""
    tokens = rng.randint(200, 600) if stream else rng.randint(20, 120)
    return {
        "model": pool.model,
        "messages": [{"role": "user", "content": f"chaos {rng.getrandbits(32):08x}"}],
        "max_tokens": tokens,
        "stream": stream,
        "extra_body": {"ignore_eos": True},
    }


def _within(spans: tuple[Span, ...], at: float) -> bool:
    return any(s.start <= at < s.end for s in spans)


def _code(error: openai.APIError) -> str | None:
    body = error.body
    return str(body.get("code")) if isinstance(body, dict) and body.get("code") else None


def _describe(error: Exception) -> str:
    status = getattr(error, "status_code", None)
    text = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
    return f"{type(error).__name__}{f' {status}' if status else ''}: {text}"
