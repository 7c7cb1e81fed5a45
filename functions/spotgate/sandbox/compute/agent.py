"""The simulated VM agent: what the real startup and shutdown scripts do, for every sandbox VM.

On a real VM the startup script reports each boot phase (``progress``), waits for the inference engine's
health check and publishes ``ready`` to the control topic; the shutdown script, run on the ACPI soft-off of
a preemption or a stop, publishes ``draining`` first (DESIGN §2.2). The control plane routes traffic by
these messages, so the sandbox sends the same JSON (``{"v":1,"kind":…,"pool","instance","zone","at"}``)
through the same topic. The real startup script also leaves a watcher on the metadata server's
``instance/preempted?wait_for_change=true`` that publishes ``draining`` the moment it turns TRUE; in the
sandbox that moment is the model's PREEMPT_NOTICE event (with a pool's ``preemption_notice``, well before
the soft-off), and the agent publishes ``draining`` on it.

A sandbox VM has nothing to install, copy or pull (GCE's boot is modelled by the Compute emulation), so its
agent reports one phase, ``loading``, when the guest is RUNNING and the engine starts loading the model.

Only a VM whose guest booted (seen RUNNING) runs the shutdown script; a VM stopped mid-boot sends nothing.
Each boot is a *cycle*: a stop, preemption or new boot ends the cycle, which cancels its health polling,
so a late health answer never announces a VM that is already going away.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

import urllib3

from spotgate.clock import SystemClock
from spotgate.domain import BootPhase
from spotgate.errors import SpotgateError
from spotgate.ports import Clock
from spotgate.sandbox.compute.model import VmEvent, VmEventKind
from spotgate.sandbox.pubsub.push import format_time
from spotgate.sandbox.pubsub.service import MessagePublisher

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Cycle:
    number: int = 0
    booted: bool = False
    draining: bool = False


class VmAgent:
    """Publishes ``ready`` / ``draining`` for the VMs whose events ``add_listener`` delivers, while started."""

    def __init__(
        self,
        add_listener: Callable[[Callable[[VmEvent], None]], None],
        publisher: MessagePublisher,
        *,
        topic: str = "control",
        clock: Clock | None = None,
        health_timeout: timedelta = timedelta(minutes=10),
        poll_interval: timedelta = timedelta(milliseconds=200),
        request_timeout: timedelta = timedelta(seconds=2),
        workers: int = 16,
    ) -> None:
        self._publisher = publisher
        self._topic = topic
        self._clock = clock or SystemClock()
        self._health_timeout = health_timeout.total_seconds()
        self._poll_interval = poll_interval.total_seconds()
        self._http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(total=request_timeout.total_seconds()))
        self._workers = workers
        self._cycles: dict[str, _Cycle] = {}
        self._busy = 0
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        add_listener(self.on_event)

    def start(self) -> None:
        """Start reacting to VM events; a no-op if running."""
        with self._cond:
            if self._pool is not None:
                return
            self._stopping.clear()
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="sandbox-agent")

    def stop(self) -> None:
        """Cancel health polls, finish in-flight publishes and join every thread; idempotent."""
        with self._cond:
            pool, self._pool = self._pool, None
            self._stopping.set()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        with self._cond:
            self._busy = 0
            self._cond.notify_all()
        self._http.clear()

    def wait_idle(self, timeout: float) -> bool:
        """True once no health poll or publish is pending; False if ``timeout`` seconds pass first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._busy == 0, timeout=timeout)

    def on_event(self, event: VmEvent) -> None:
        """The Compute model's listener; never blocks (the work runs on the agent's threads)."""
        with self._cond:
            if self._pool is None:
                return
            cycle = self._cycles.setdefault(event.instance, _Cycle())
            if event.kind is VmEventKind.RUNNING:
                self._begin_cycle(cycle, event)
            elif event.kind in (VmEventKind.PREEMPT_NOTICE, VmEventKind.STOPPING):
                self._begin_draining(cycle, event)
            elif event.kind is VmEventKind.TERMINATED:
                self._cycles[event.instance] = _Cycle(cycle.number + 1)

    def _begin_cycle(self, cycle: _Cycle, event: VmEvent) -> None:
        cycle.number, cycle.booted, cycle.draining = cycle.number + 1, True, False
        self._submit(self._await_ready, event, cycle.number)

    def _begin_draining(self, cycle: _Cycle, event: VmEvent) -> None:
        if not cycle.booted or cycle.draining:
            return
        cycle.number, cycle.draining = cycle.number + 1, True
        self._submit(self._announce, "draining", event)

    def _submit(self, work: Callable[..., None], *args: object) -> None:
        if self._pool is None:
            return
        self._busy += 1
        self._pool.submit(self._settled, work, *args)

    def _settled(self, work: Callable[..., None], *args: object) -> None:
        try:
            work(*args)
        finally:
            with self._cond:
                self._busy = max(0, self._busy - 1)
                self._cond.notify_all()

    def _current(self, instance: str, number: int) -> bool:
        with self._cond:
            cycle = self._cycles.get(instance)
            return cycle is not None and cycle.number == number and not self._stopping.is_set()

    def _await_ready(self, event: VmEvent, number: int) -> None:
        """Poll the engine's health until it answers 200, then announce ``ready``; give up when the cycle ends."""
        if event.engine_url is None:
            log.warning("running VM has no engine URL; not announcing it", extra={"instance": event.instance})
            return
        if self._current(event.instance, number):
            self._announce("progress", event, phase=BootPhase.LOADING)
        url = event.engine_url.rstrip("/") + event.health_path
        deadline = time.monotonic() + self._health_timeout
        while self._current(event.instance, number):
            if self._healthy(url):
                if self._current(event.instance, number):
                    self._announce("ready", event)
                return
            if time.monotonic() >= deadline:
                log.warning("engine never became healthy; not announcing", extra={"instance": event.instance})
                return
            self._stopping.wait(self._poll_interval)

    def _healthy(self, url: str) -> bool:
        try:
            return bool(self._http.request("GET", url).status == 200)
        except urllib3.exceptions.HTTPError:
            return False

    def _announce(self, kind: str, event: VmEvent, *, phase: BootPhase | None = None) -> None:
        message = {
            "v": 1,
            "kind": kind,
            **({"phase": phase.value} if phase is not None else {}),
            "pool": event.pool,
            "instance": event.instance,
            "zone": event.zone,
            "at": format_time(self._clock.now()),
        }
        try:
            self._publisher.publish(self._topic, json.dumps(message, separators=(",", ":")).encode())
        except SpotgateError:
            log.exception("agent could not publish", extra={"instance": event.instance, "kind": kind})
        else:
            log.info("agent published", extra={"instance": event.instance, "kind": kind, "pool": event.pool})
