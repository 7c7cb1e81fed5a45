"""Forwarding one authorised request: pick a backend, fail over before the first byte, hold, or refuse.

The order for a request to pool P (DESIGN §2.4):
1. P's ready VMs, least in flight first, skipping ejected ones; a backend the request provably never
   reached (connection refused, connect timeout) is skipped and the next one tried. A backend that read the
   request and closed without answering may have run it: that request fails with 502 (at most once),
   unless it is an inference request of a pool with ``replay_unanswered``; such a backend is not ejected;
2. P's overflow service, with an ID token for its audience;
3. ejected ready VMs, as a last resort before making the caller wait;
4. hold: publish ``wake`` (debounced, off the request path) and wait up to ``wake_hold`` for the routing
   table to change, then try again from 1. Streaming callers get their headers at the first heartbeat and
   an SSE comment every ``heartbeat`` so idle-timeout proxies keep the connection; others wait silently.
5. 503 with ``Retry-After`` (or, for a stream whose headers are already out, a final SSE error event).
Once a backend has answered, nothing is retried: the answer is relayed as it arrives. A stream cut
mid-answer is continued on another ready backend of the pool (``continued_stream``; the pool's
``continuation`` switch), or ends with an SSE error event where a faithful continuation is impossible.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from flask import Response

from gateway import errors
from gateway.access import Exchange
from gateway.activity import ActivityRecorder
from gateway.continuation import Kind
from gateway.continued_stream import continued_stream
from gateway.hangup import watch
from gateway.headers import SSE_HEADERS
from gateway.pending import Pending
from gateway.relay import HEARTBEAT, Answer, Relay, answer, in_open_stream
from gateway.selection import Balancer
from gateway.table import LiveTable
from gateway.tokens import TokenSource
from gateway.upstream import UnansweredError, UnreachableError, Upstreams, UpstreamTimeoutError, discard
from gateway.upstream_response import UpstreamResponse
from gateway.wake import WakeNotifier
from spotgate.domain import BackendKind, Route
from spotgate.errors import UnavailableError
from spotgate.fleet import PoolSpec

log = logging.getLogger(__name__)
_GONE_CHECK = 0.5  # seconds: how often a held plain request checks whether its caller is still there


@dataclass(frozen=True, slots=True)
class Call:
    """An authenticated, validated request, ready to send to any backend of ``pool``."""

    pool: PoolSpec
    method: str
    target: str  # path and query on the backend
    headers: dict[str, str]
    body: bytes | None
    stream: bool  # the caller expects SSE: held requests get heartbeats
    request_id: str
    inference: bool = False  # an OpenAI endpoint (not pass-through): the pool may allow its replay
    public_prefix: str = ""  # the gateway path the backend's paths appear under (pass-through: /pools/<pool>)
    strip_usage: bool = False  # the gateway asked the engine for stream usage the caller did not ask for
    continuation: Kind | None = None  # a stream the pool may continue elsewhere if cut: its endpoint's kind
    client: Any = None  # the caller's socket, watched for a hang-up while a plain request waits
    exchange: Exchange = field(default_factory=lambda: Exchange("", "", "", 0.0))  # the access-log record

    @property
    def replayable(self) -> bool:
        """May go to another backend after one read it and closed without answering (it may have run)."""
        return self.inference and self.pool.replay_unanswered


@dataclass(frozen=True, slots=True)
class _Opened:
    route: Route
    response: UpstreamResponse


@dataclass(slots=True)
class _Hold:
    version: int
    deadline: float
    tried: set[str] = field(default_factory=set)


class Forwarder:
    def __init__(
        self,
        *,
        table: LiveTable,
        balancer: Balancer,
        upstreams: Upstreams,
        tokens: TokenSource,
        wake: WakeNotifier,
        activity: ActivityRecorder,
        heartbeat: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._table = table
        self._balancer = balancer
        self._upstreams = upstreams
        self._tokens = tokens
        self._wake = wake
        self._activity = activity
        self._heartbeat = heartbeat
        self._monotonic = monotonic

    def forward(self, call: Call, release: Callable[[], None]) -> Response:
        """The backend's response (relayed as it arrives), a held stream, or ApiError 503/502/504.

        ``release`` is called once when the response is finished or abandoned.
        """
        pool = call.pool.name
        self._activity.arrived(pool)
        if not self._table.ready(pool):
            self._wake.wake(pool)
        hold = _Hold(self._table.version, self._monotonic() + call.pool.wake_hold.total_seconds())
        if call.stream:
            pending: Pending[_Opened] = Pending(lambda: self._attempt(call, hold.tried), self._finish)
            if not pending.wait(self._heartbeat):  # the backend is slow to answer: start the stream ourselves
                return self._held_stream(call, hold, release, pending)
            opened = pending.take()
        else:
            opened = self._attempt_while_watched(call, hold)
            if opened is not None:
                return self._respond(call, opened, release)
            raise errors.no_backend(pool, _retry_after(call.pool))
        if opened is None:
            self._wake.wake(pool)
            opened = self._hold(call, hold, min(hold.deadline, self._after(self._heartbeat)))
        if opened is not None:
            return self._respond(call, opened, release)
        if not call.stream or self._monotonic() >= hold.deadline:
            raise errors.no_backend(pool, _retry_after(call.pool))
        return self._held_stream(call, hold, release)

    def _attempt_while_watched(self, call: Call, hold: _Hold) -> _Opened | None:
        """Try, then hold, while watching the caller: a hang-up shuts the upstream request and ends this one."""
        with watch(call.client) as cancel:
            try:
                opened = self._attempt(call, hold.tried)
                if opened is None:
                    self._wake.wake(call.pool.name)
                    opened = self._hold(call, hold, hold.deadline, cancel.gone)
            except errors.ApiError:
                if cancel.gone.is_set():
                    raise errors.client_gone() from None
                raise
            if cancel.gone.is_set():
                if opened is not None:
                    self._finish(opened, call.exchange)
                raise errors.client_gone()
            return opened

    # trying backends -------------------------------------------------------------------------------------
    def _attempt(self, call: Call, tried: set[str]) -> _Opened | None:
        for route in self._candidates(call.pool, tried):
            tried.add(route.key)
            opened = self._open(route, call)
            if opened is not None:
                return opened
            call.exchange.failed_over = True  # if a later candidate answers, it was failed over to
        return None

    def _candidates(self, pool: PoolSpec, tried: set[str]) -> Iterator[Route]:
        while (route := self._balancer.pick(self._table.ready(pool.name), tried)) is not None:
            yield route
        overflow = self._table.overflow(pool.name)
        if overflow is not None and pool.overflow is not None and overflow.key not in tried:
            yield overflow
        while (route := self._balancer.pick(self._table.ready(pool.name), tried, ejected=True)) is not None:
            yield route

    def _open(self, route: Route, call: Call) -> _Opened | None:
        headers = call.headers
        if route.kind is BackendKind.OVERFLOW and call.pool.overflow is not None:
            audience = call.pool.overflow.audience or call.pool.overflow.url
            try:
                headers = {**headers, "Authorization": f"Bearer {self._tokens.id_token(audience)}"}
            except UnavailableError as e:
                log.warning("no ID token for overflow", extra={"pool": call.pool.name, "error": str(e)})
                return None
        self._balancer.begin(route)
        sent = self._monotonic()  # GPU time runs from here: a plain answer is computed before its headers
        try:
            response = self._upstreams.open(route.address, call.method, call.target, headers, call.body)
        except UnreachableError as e:  # no request byte reached it: safe to send elsewhere
            self._balancer.end(route)
            if route.kind is BackendKind.VM:
                self._balancer.connect_failed(route)
            log.warning(
                "backend unreachable", extra={"backend": route.key, "request_id": call.request_id, "error": str(e)}
            )
            return None
        except UnansweredError as e:  # it read the request and closed: it may have run it, and it is not down
            self._balancer.end(route)
            log.warning(
                "backend closed without answering",
                extra={"backend": route.key, "request_id": call.request_id, "error": str(e), "replay": call.replayable},
            )
            if call.replayable:
                return None
            raise errors.bad_gateway(
                f"Backend {route.backend} closed the connection without answering; the request was not sent "
                "elsewhere because it may have run."
            ) from None
        except UpstreamTimeoutError:
            self._balancer.end(route)
            raise errors.gateway_timeout(f"Backend {route.backend} did not answer in time.") from None
        self._balancer.answered(route)
        self._activity.started(call.pool.name, route.backend)
        _note_backend(call.exchange, route, sent)
        return _Opened(route, response)

    def _finish(self, opened: _Opened, exchange: Exchange | None = None) -> None:
        if exchange is not None:
            exchange.backend_ended = self._monotonic()
        discard(opened.response)  # not fully read: never reuse a connection mid-body (else nothing to do)
        self._balancer.end(opened.route)
        self._activity.finished(opened.route.pool, opened.route.backend)

    # holding ---------------------------------------------------------------------------------------------
    def _hold(self, call: Call, hold: _Hold, until: float, gone: threading.Event | None = None) -> _Opened | None:
        """Wait for routing-table changes until ``until``, trying the backends again after each one.

        A held request counts as in flight: it is demand, and the control plane must keep the VM it woke
        even when the pool's idle timeout is shorter than the VM's boot.
        """
        call.exchange.held = True
        with self._activity.waiting(call.pool.name):
            while (remaining := until - self._monotonic()) > 0:
                if gone is not None and gone.is_set():
                    return None
                if not self._table.wait_for_change(hold.version, min(remaining, _GONE_CHECK)):
                    continue
                hold.version = self._table.version
                hold.tried.clear()
                opened = self._attempt(call, hold.tried)
                if opened is not None:
                    return opened
        return None

    def _held_stream(
        self, call: Call, hold: _Hold, release: Callable[[], None], pending: Pending[_Opened] | None = None
    ) -> Response:
        """A 200 SSE response that sends heartbeats while it waits for ``pending`` or for the hold."""
        current: list[_Opened] = []
        call.exchange.held = True

        def chunks() -> Iterator[bytes]:
            try:
                opened = None if pending is None else (yield from self._await_attempt(call, pending))
                while opened is None:
                    if self._monotonic() >= hold.deadline:
                        yield errors.no_backend(call.pool.name, _retry_after(call.pool)).sse_event()
                        return
                    yield HEARTBEAT
                    opened = self._hold(call, hold, min(hold.deadline, self._after(self._heartbeat)))
            except errors.ApiError as e:  # e.g. a backend timed out: the headers are out, so say it in-band
                yield e.sse_event()
                return
            current.append(opened)
            yield from in_open_stream(self._answer(call, opened, current))

        def finish() -> None:
            try:
                if pending is not None:
                    pending.abandon()
                while current:
                    self._finish(current.pop(), call.exchange)
            finally:
                release()

        headers = {"Content-Type": "text/event-stream", **SSE_HEADERS}
        return Response(Relay(chunks(), finish), status=200, headers=headers, direct_passthrough=True)

    def _await_attempt(self, call: Call, pending: Pending[_Opened]) -> Generator[bytes, None, _Opened | None]:
        """Heartbeats until the first attempt ends; its result, after publishing a wake if it found nothing."""
        yield HEARTBEAT
        while not pending.wait(self._heartbeat):
            yield HEARTBEAT
        opened = pending.take()
        if opened is None:
            self._wake.wake(call.pool.name)
        return opened

    # answering -------------------------------------------------------------------------------------------
    def _answer(self, call: Call, opened: _Opened, current: list[_Opened]) -> Answer:
        relay_sse = self._continuing(call, opened, current)
        return answer(
            opened.response,
            opened.route.backend,
            call.request_id,
            self._heartbeat,
            relay_sse=relay_sse,
            exchange=call.exchange,
            strip_usage=call.strip_usage,
            location=(opened.route.address, call.public_prefix),
        )

    def _respond(self, call: Call, opened: _Opened, release: Callable[[], None]) -> Response:
        current = [opened]
        found = self._answer(call, opened, current)
        relay = Relay(found.chunks, lambda: self._finish_all(current, release, call.exchange))
        return Response(relay, status=found.status, headers=found.headers, direct_passthrough=True)

    def _finish_all(self, current: list[_Opened], release: Callable[[], None], exchange: Exchange) -> None:
        try:
            while current:
                self._finish(current.pop(), exchange)
        finally:
            release()

    # continuing ------------------------------------------------------------------------------------------
    def _continuing(
        self, call: Call, opened: _Opened, current: list[_Opened]
    ) -> Callable[[Iterator[bytes]], Iterator[bytes]] | None:
        """How to relay this call's SSE so that a cut answer continues elsewhere; None if it may not."""
        kind, raw = call.continuation, call.body  # set only for an inference stream its pool may continue
        if kind is None or not raw:
            return None
        original: Callable[[], dict[str, Any]] = functools.partial(json.loads, raw)  # parsed only at a cut
        tried = {opened.route.key}

        def on_cut() -> None:
            if current:
                self._finish(current.pop(0))

        def relay(chunks: Iterator[bytes]) -> Iterator[bytes]:
            reopen = functools.partial(self._reopen, call, tried, current)
            return continued_stream(chunks, kind, original, reopen, request_id=call.request_id, on_cut=on_cut)

        return relay

    def _reopen(
        self, call: Call, tried: set[str], current: list[_Opened], body: bytes
    ) -> Generator[bytes, None, Iterator[bytes] | errors.ApiError]:
        """Open the continuation on another ready backend (VM, then overflow), holding up to ``wake_hold``."""
        following = replace(call, body=body)
        hold = _Hold(self._table.version, self._after(call.pool.wake_hold.total_seconds()), tried)
        try:
            opened = self._attempt(following, hold.tried)
            if opened is None:
                self._wake.wake(call.pool.name)
            while opened is None:
                if self._monotonic() >= hold.deadline:
                    return errors.stream_interrupted(
                        f"The backend stream was interrupted (request {call.request_id}) and no other backend "
                        f"of pool {call.pool.name!r} was ready to continue it."
                    )
                yield HEARTBEAT
                opened = self._hold(following, hold, min(hold.deadline, self._after(self._heartbeat)))
        except errors.ApiError as e:
            return e
        current.append(opened)
        tried.add(opened.route.key)
        call.exchange.continued += 1
        found = answer(opened.response, opened.route.backend, call.request_id, self._heartbeat, relay_sse=lambda c: c)
        if found.status == 200 and found.sse and found.error is None:
            return found.chunks
        return errors.stream_interrupted(
            f"The backend stream was interrupted (request {call.request_id}) and backend {opened.route.backend} "
            f"refused to continue it ({found.status})."
        )

    def _after(self, seconds: float) -> float:
        return self._monotonic() + seconds


def _note_backend(exchange: Exchange, route: Route, now: float) -> None:
    exchange.backend, exchange.kind = route.backend, route.kind.value
    if exchange.backend_started is None:  # from the request to the first backend that answered (and continuations)
        exchange.backend_started = now


def _retry_after(pool: PoolSpec) -> int:
    """Seconds a refused caller should wait: about a hold, within what OpenAI SDKs honour (60 s)."""
    return min(60, max(5, math.ceil(pool.wake_hold.total_seconds())))
