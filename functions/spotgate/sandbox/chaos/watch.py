"""The eyes of a chaos run: VM lifecycles from the sandbox, routes from the store, overflow scaling from Cloud Run.

Why it polls the store rather than subscribing: the verdict needs *when* each route changed as the gateway
would see it, at a finer grain than the store's change feed (which coalesces writes within its poll
interval). A 0.1 s poll of the routing table is cheap on SQLite and bounds the error of every measured
latency. VM lifecycles come from the compute model's own events (exact), and the overflow service's
service-level min instances from the sandbox's Cloud Run API, the same place spotgate's adapter reads it.
"""

from __future__ import annotations

import logging
import threading
import time

import requests

from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.domain import InstanceStatus
from spotgate.errors import SpotgateError
from spotgate.fleet import FleetConfig
from spotgate.sandbox.chaos.record import RouteSpan, VmRun
from spotgate.sandbox.chaos.spans import Span
from spotgate.sandbox.compute.model import VmEvent, VmEventKind
from spotgate.sandbox.devstack.stack import DevStack

log = logging.getLogger(__name__)
_BOOTING = (InstanceStatus.PROVISIONING, InstanceStatus.STAGING)
ROUTE_POLL = 0.1
OVERFLOW_POLL = 0.5


class _Open:
    """A stretch still in progress: its key's attributes, when it began, and (VM runs) when its boot began."""

    def __init__(self, since: float, *values: str, booting: float | None = None) -> None:
        self.since = since
        self.values = values
        self.booting = booting


class Watcher:
    """Records VM runs, route-state spans and overflow warm spans from ``start`` until ``stop``."""

    def __init__(self, stack: DevStack) -> None:
        self._stack = stack
        self._fleet: FleetConfig = stack.fleet
        self._store = SqliteStore(stack.db_path)
        self._http = requests.Session()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running: dict[str, _Open] = {}  # instance -> RUNNING since (pool, model)
        self._booting: dict[str, float] = {}  # instance -> first seen PROVISIONING in this boot
        self._stopping: dict[str, tuple[_Open, float]] = {}  # instance -> (run, STOPPING at)
        self._runs: list[VmRun] = []
        self._route_open: dict[str, _Open] = {}  # route key -> (pool, backend, kind, state)
        self._route_spans: list[RouteSpan] = []
        self._warm_open: dict[str, float] = {}
        self._warm: list[tuple[str, Span]] = []

    def start(self) -> None:
        self._stack.cloud.compute.add_listener(self._on_vm_event)
        self._thread = threading.Thread(target=self._poll, name="chaos-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and close every open stretch at now."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        now = time.time()
        with self._lock:
            for instance in list(self._running):
                self._close_run(instance, now, now)
            for instance, (run, stopping_at) in list(self._stopping.items()):
                self._runs.append(_run(instance, run, stopping_at, now))
            self._stopping.clear()
            for key in list(self._route_open):
                self._close_route(key, now)
            for pool in list(self._warm_open):
                self._warm.append((pool, Span(self._warm_open.pop(pool), now)))
        self._store.close()
        self._http.close()

    def vm_runs(self) -> tuple[VmRun, ...]:
        with self._lock:
            return tuple(self._runs)

    def routes(self) -> tuple[RouteSpan, ...]:
        with self._lock:
            return tuple(self._route_spans)

    def overflow_warm(self) -> tuple[tuple[str, Span], ...]:
        with self._lock:
            return tuple(self._warm)

    # VM lifecycles -------------------------------------------------------------------------------------------
    def _on_vm_event(self, event: VmEvent) -> None:
        at = event.at.timestamp()
        with self._lock:
            if self._stop.is_set():
                return
            if event.kind is VmEventKind.RUNNING:
                booting = self._booting.pop(event.instance, None)
                self._running[event.instance] = _Open(at, event.pool, self._model(event.instance), booting=booting)
            elif event.kind is VmEventKind.STOPPING and event.instance in self._running:
                self._stopping[event.instance] = (self._running.pop(event.instance), at)
            elif event.kind is VmEventKind.TERMINATED:
                self._close_run(event.instance, at, at)

    def _close_run(self, instance: str, stopping_at: float, terminated_at: float) -> None:
        if instance in self._stopping:
            run, stopping_at = self._stopping.pop(instance)
            self._runs.append(_run(instance, run, stopping_at, terminated_at))
        elif instance in self._running:
            self._runs.append(_run(instance, self._running.pop(instance), stopping_at, terminated_at))

    def _model(self, instance: str) -> str:
        pool = self._fleet.pool_of_instance(instance)
        vm = pool.vm(instance) if pool is not None else None
        return str(vm.provisioning_model) if vm is not None else "SPOT"

    # polling -------------------------------------------------------------------------------------------------
    def _poll(self) -> None:
        next_overflow = 0.0
        while not self._stop.wait(ROUTE_POLL):
            self._poll_boots()
            self._poll_routes()
            if time.monotonic() >= next_overflow:
                next_overflow = time.monotonic() + OVERFLOW_POLL
                self._poll_overflow()

    def _poll_boots(self) -> None:
        """Note when each VM is first seen booting: the compute model announces RUNNING, not PROVISIONING."""
        now = time.time()
        booting = {vm.name for vm in self._stack.cloud.compute.instances() if vm.status in _BOOTING}
        with self._lock:
            for name in booting - self._booting.keys():
                self._booting[name] = now
            for name in self._booting.keys() - booting:
                del self._booting[name]  # stopped mid-boot, or RUNNING (the event took its time already)

    def _poll_routes(self) -> None:
        try:
            routes = self._store.list_routes()
        except SpotgateError as e:  # a busy store is retried at the next poll; the last states stand
            log.debug("route poll failed", extra={"error": str(e)})
            return
        now = time.time()
        with self._lock:
            for route in routes:
                current = self._route_open.get(route.key)
                values = (route.pool, route.backend, str(route.kind), str(route.state))
                if current is not None and current.values == values:
                    continue
                self._close_route(route.key, now)
                self._route_open[route.key] = _Open(now, *values)

    def _close_route(self, key: str, now: float) -> None:
        current = self._route_open.pop(key, None)
        if current is not None:
            pool, backend, kind, state = current.values
            self._route_spans.append(RouteSpan(pool, backend, kind, state, Span(current.since, now)))

    def _poll_overflow(self) -> None:
        for pool in self._fleet.pools:
            if pool.overflow is None:
                continue
            count = self._overflow_min_instances(pool.overflow.service, pool.overflow.region)
            if count is None:  # unreadable this time: the last known state stands
                continue
            warm = count >= 1
            now = time.time()
            with self._lock:
                if warm and pool.name not in self._warm_open:
                    self._warm_open[pool.name] = now
                elif not warm and pool.name in self._warm_open:
                    self._warm.append((pool.name, Span(self._warm_open.pop(pool.name), now)))

    def _overflow_min_instances(self, service: str, region: str | None) -> int | None:
        location = region or self._fleet.region
        url = f"{self._stack.cloud.run_url}/v2/projects/{self._fleet.project}/locations/{location}/services/{service}"
        try:
            response = self._http.get(url, timeout=2)
            response.raise_for_status()
            return int(response.json().get("scaling", {}).get("minInstanceCount", 0))
        except (requests.RequestException, ValueError) as e:
            log.debug("overflow poll failed", extra={"service": service, "error": str(e)})
            return None


def _run(instance: str, run: _Open, stopping_at: float, terminated_at: float) -> VmRun:
    pool, model = run.values
    return VmRun(pool, instance, model, Span(run.since, stopping_at), Span(run.since, terminated_at), run.booting)
