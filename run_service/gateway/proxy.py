"""Forwarding one authorised request: pick a backend, fail over before the first byte, hold, or refuse.

The order for a request to pool P (DESIGN §2.4):
1. P's ready VMs, least in flight first, skipping ejected ones; a backend that sends no response byte
   (refused, reset, connect timeout) is skipped and the next one tried;
2. P's overflow service, with an ID token for its audience;
3. ejected ready VMs, as a last resort before making the caller wait;
4. hold: publish ``wake`` (debounced, off the request path) and wait up to ``wake_hold`` for the routing
   table to change, then try again from 1. Streaming callers get their headers at the first heartbeat and
   an SSE comment every ``heartbeat`` so idle-timeout proxies keep the connection; others wait silently.
5. 503 with ``Retry-After`` (or, for a stream whose headers are already out, a final SSE error event).
Once a backend has answered, nothing is retried: the answer is relayed as it arrives.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field

import urllib3
from flask import Response

from gateway import errors
from gateway.activity import ActivityRecorder
from gateway.headers import SSE_HEADERS, downstream_headers
from gateway.pending import Pending
from gateway.relay import HEARTBEAT, Relay, first_byte_heartbeats, plain_body, sse_body
from gateway.selection import Balancer
from gateway.table import LiveTable
from gateway.tokens import TokenSource
from gateway.upstream import UnreachableError, Upstreams, UpstreamTimeoutError, body_chunks, discard
from gateway.wake import WakeNotifier
from spotgate.domain import BackendKind, Route
from spotgate.errors import UnavailableError
from spotgate.fleet import PoolSpec

log = logging.getLogger(__name__)

_ERROR_BODY_LIMIT = 64 * 1024


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


@dataclass(frozen=True, slots=True)
class _Opened:
    route: Route
    response: urllib3.HTTPResponse


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
            opened = self._attempt(call, hold.tried)
        if opened is None:
            self._wake.wake(pool)
            first_wait = hold.deadline if not call.stream else min(hold.deadline, self._after(self._heartbeat))
            opened = self._hold(call, hold, first_wait)
        if opened is not None:
            return self._respond(call, opened, release)
        if not call.stream or self._monotonic() >= hold.deadline:
            raise errors.no_backend(pool, _retry_after(call.pool))
        return self._held_stream(call, hold, release)

    # trying backends -------------------------------------------------------------------------------------
    def _attempt(self, call: Call, tried: set[str]) -> _Opened | None:
        for route in self._candidates(call.pool, tried):
            tried.add(route.key)
            opened = self._open(route, call)
            if opened is not None:
                return opened
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
        try:
            response = self._upstreams.open(route.address, call.method, call.target, headers, call.body)
        except UnreachableError as e:
            self._balancer.end(route)
            if route.kind is BackendKind.VM:
                self._balancer.connect_failed(route)
            log.warning(
                "backend unreachable", extra={"backend": route.key, "request_id": call.request_id, "error": str(e)}
            )
            return None
        except UpstreamTimeoutError:
            self._balancer.end(route)
            raise errors.gateway_timeout(f"Backend {route.backend} did not answer in time.") from None
        self._balancer.answered(route)
        self._activity.started(call.pool.name, route.backend)
        return _Opened(route, response)

    def _finish(self, opened: _Opened) -> None:
        if opened.response.connection is not None:  # not fully read: never reuse a connection mid-body
            discard(opened.response)
        self._balancer.end(opened.route)
        self._activity.finished(opened.route.pool)

    # holding ---------------------------------------------------------------------------------------------
    def _hold(self, call: Call, hold: _Hold, until: float) -> _Opened | None:
        """Wait for routing-table changes until ``until``, trying the backends again after each one.

        A held request counts as in flight: it is demand, and the control plane must keep the VM it woke
        even when the pool's idle timeout is shorter than the VM's boot.
        """
        with self._activity.waiting(call.pool.name):
            while (remaining := until - self._monotonic()) > 0:
                if not self._table.wait_for_change(hold.version, remaining):
                    return None
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
            yield from self._stream_into_open_sse(call, opened)

        def finish() -> None:
            try:
                if pending is not None:
                    pending.abandon()
                for opened in current:
                    self._finish(opened)
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

    def _stream_into_open_sse(self, call: Call, opened: _Opened) -> Iterator[bytes]:
        """Continue a stream whose 200 headers were already sent: relay SSE, or turn an error into an event."""
        response = opened.response
        if response.status == 200 and _is_sse(response):
            yield from sse_body(first_byte_heartbeats(body_chunks(response), self._heartbeat), call.request_id)
            return
        yield _upstream_error(response).sse_event()

    # answering -------------------------------------------------------------------------------------------
    def _respond(self, call: Call, opened: _Opened, release: Callable[[], None]) -> Response:
        response = opened.response
        if response.status in (401, 403):
            # The backend refused the gateway's own credentials (an overflow IAM problem); the caller's key
            # is fine, so this must not surface as the caller's 401/403.
            self._finish(opened)
            raise errors.bad_gateway(f"Backend {opened.route.backend} refused the gateway ({response.status}).")
        sse = _is_sse(response)
        headers = downstream_headers(response.headers, keep_length=not sse)
        if sse:
            headers.extend(SSE_HEADERS.items())
        chunks = body_chunks(response)
        body = (
            sse_body(first_byte_heartbeats(chunks, self._heartbeat), call.request_id)
            if sse
            else plain_body(chunks, call.request_id)
        )
        relay = Relay(body, lambda: _both(self._finish, opened, release))
        return Response(relay, status=response.status, headers=headers, direct_passthrough=True)

    def _after(self, seconds: float) -> float:
        return self._monotonic() + seconds


def _both(finish: Callable[[_Opened], None], opened: _Opened, release: Callable[[], None]) -> None:
    try:
        finish(opened)
    finally:
        release()


def _is_sse(response: urllib3.HTTPResponse) -> bool:
    return str(response.headers.get("content-type", "")).lower().startswith("text/event-stream")


def _retry_after(pool: PoolSpec) -> int:
    """Seconds a refused caller should wait: about a hold, within what OpenAI SDKs honour (60 s)."""
    return min(60, max(5, math.ceil(pool.wake_hold.total_seconds())))


def _upstream_error(response: urllib3.HTTPResponse) -> errors.ApiError:
    """The backend's error as an ApiError, keeping its message when it sent the OpenAI shape."""
    raw = response.read(_ERROR_BODY_LIMIT)
    try:
        error = json.loads(raw).get("error", {})
        message = str(error.get("message") or "")
    except (ValueError, AttributeError):
        message = ""
    return errors.ApiError(response.status, message or f"Backend answered {response.status}.", "api_error")
