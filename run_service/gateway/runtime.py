"""The gateway's long-lived parts, wired once per worker: live table, auth, limits, forwarder, flusher.

Construction does no I/O; ``start`` subscribes to the store and starts the background threads (greenlets
under gevent), ``close`` stops them and flushes activity one last time. ``admit`` and ``forward`` are the
two steps every proxied request takes after its body has been validated.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Response
from google.auth import transport as auth_transport

from gateway.access import Exchange
from gateway.activity import ActivityRecorder
from gateway.auth import Authenticator, Principal
from gateway.intake import BodyBudget, BodyReader
from gateway.limits import Admission, KeyLimiter, Release
from gateway.payload import parse_object
from gateway.proxy import Call, Forwarder
from gateway.selection import Balancer
from gateway.served import ServedRecorder
from gateway.shared_rate import SharedRate
from gateway.shared_slots import SlotSharing
from gateway.table import LiveTable
from gateway.tokens import TokenSource
from gateway.upstream import Upstreams
from gateway.usage import UsageRecorder
from gateway.wake import WakeNotifier
from spotgate.fleet import FleetConfig
from spotgate.ports import Clock, Publisher, RouteStore
from spotgate.settings import GatewaySettings


@dataclass(frozen=True, slots=True)
class Dependencies:
    """Everything the gateway talks to; ``wsgi`` builds the production set, tests build their own."""

    settings: GatewaySettings
    fleet: FleetConfig
    store: RouteStore
    publisher: Publisher
    clock: Clock
    token_source: TokenSource
    auth_request: auth_transport.Request
    control_topic: str
    monotonic: Callable[[], float] = time.monotonic


class Gateway:
    def __init__(self, deps: Dependencies) -> None:
        s = deps.settings
        self.settings = s
        self.fleet = deps.fleet
        self.monotonic = deps.monotonic
        self.table = LiveTable(deps.store, max_age=s.max_snapshot_age.total_seconds(), monotonic=deps.monotonic)
        self.auth = Authenticator(self.table, s, deps.clock, deps.auth_request)
        self.limiter = KeyLimiter(deps.monotonic, SharedRate(deps.store, deps.clock, deps.monotonic))
        share = max(s.max_body_bytes, s.max_body_bytes_in_flight // 2)  # what one key's uploads may reserve
        self.budget = BodyBudget(s.max_body_bytes_in_flight, s.max_uploads_per_key, share)
        self.bodies = BodyReader(
            self.budget, limit=s.max_body_bytes, timeout=s.body_timeout.total_seconds(), monotonic=deps.monotonic
        )
        self.activity = ActivityRecorder(
            deps.store, deps.clock, s.activity_flush, lambda ok: self.table.report_store(ok=ok)
        )
        self.usage = UsageRecorder(deps.store, deps.clock, s.activity_flush)
        self.served = ServedRecorder(deps.store, deps.clock, s.activity_flush)
        self.slots = SlotSharing(deps.store, deps.clock, self.limiter, s.activity_flush)
        self.wake = WakeNotifier(deps.publisher, deps.control_topic, deps.clock, s.wake_debounce)
        self.upstreams = Upstreams(connect_timeout=s.connect_timeout, read_timeout=s.read_timeout)
        self.balancer = Balancer(
            eject_after=s.eject_after_failures, eject_for=s.eject_for.total_seconds(), monotonic=deps.monotonic
        )
        self.forwarder = Forwarder(
            table=self.table,
            balancer=self.balancer,
            upstreams=self.upstreams,
            tokens=deps.token_source,
            wake=self.wake,
            activity=self.activity,
            heartbeat=s.heartbeat.total_seconds(),
            monotonic=deps.monotonic,
        )

    def start(self) -> None:
        self.wake.start()
        self.activity.start()
        self.usage.start()
        self.served.start()
        self.slots.start()
        self.table.start()

    def close(self) -> None:
        self.table.close()
        self.activity.close()
        self.usage.close()
        self.served.close()
        self.slots.close()
        self.wake.close(timeout=1.0)  # a wake still queued at shutdown is not worth delaying the exit
        self.upstreams.close()

    def finish(self, exchange: Exchange, status: int) -> None:
        """The request's response is closed: log its access line, count its usage and where it was served."""
        if not exchange.logged:
            exchange.finish(status, self.monotonic())
            self.usage.add(exchange)
            self.served.add(exchange, status)

    def admit(self, principal: Principal) -> Admission:
        """Take the key's rate token and concurrency slot (ApiError 429), before any body byte is read."""
        admission = Admission()
        if principal.key is not None:
            admission.hold(self.limiter.acquire(principal.key))
        return admission

    def meter(self, principal: Principal) -> None:
        """Count a request that holds nothing (a model listing) against the key's rpm (ApiError 429).

        No concurrency slot: ``max_concurrent`` bounds what a key keeps busy (streams, held requests, backend
        work), and a listing is answered from memory at once.
        """
        if principal.key is not None:
            self.limiter.take(principal.key)

    def read_body(self, environ: dict[str, Any], principal: Principal, admission: Admission) -> bytes:
        """The request body within the gateway's bounds (``gateway.intake``); its bytes are held by ``admission``."""
        return self.bodies.read(environ, principal.name, admission.hold)

    def parse_body(self, body: bytes, admission: Admission) -> tuple[dict[str, Any], Callable[[], None]]:
        """The body's JSON object within bounds (``gateway.payload``), and what gives its parsed size back.

        The parsed size is reserved before parsing and held by ``admission`` until the request ends, unless
        given back earlier (once the request no longer holds the parsed object).
        """
        s = self.settings
        held: list[Release] = []  # the reservation parse_object makes (it reserves before parsing, once)

        def reserve(size: int) -> None:
            held.append(self.bodies.hold_parsed(size))
            admission.hold(held[-1])

        payload = parse_object(body, max_depth=s.max_json_depth, max_elements=s.max_json_elements, reserve=reserve)
        return payload, held[0]

    def forward(self, call: Call, admission: Admission) -> Response:
        """Forward ``call``; what ``admission`` holds is released when the response ends."""
        try:
            return self.forwarder.forward(call, admission.release)
        except BaseException:
            admission.release()
            raise
