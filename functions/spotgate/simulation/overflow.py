"""The modelled Cloud Run overflow service: one GPU instance that is warm, starting, or scaled to zero.

Cloud Run behaviours modelled: with service-level min instances 1 an instance is kept (started with a cold
start if there is none); with 0, a request that finds no instance waits for a cold start, and an instance
with nothing to do is scaled in after ``idle_keep``. Cloud Run GPU bills an instance from its start until
it is scaled in, busy or not. One instance serves any number of concurrent requests here: the model is
about when the service is up, not about its throughput.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from spotgate.simulation.timeline import Timeline


class InstanceState(enum.Enum):
    DOWN = "down"
    STARTING = "starting"
    UP = "up"


@dataclass(slots=True)
class SimOverflow:
    timeline: Timeline
    cold_start: float
    idle_keep: float
    min_instances: int = 0
    state: InstanceState = InstanceState.DOWN
    inflight: int = 0
    last_active: float = 0.0
    _waiting: list[Callable[[], None]] = field(default_factory=list)

    @property
    def billed(self) -> bool:
        return self.state is not InstanceState.DOWN

    @property
    def warm(self) -> bool:
        return self.state is InstanceState.UP

    def set_min_instances(self, count: int) -> None:
        self.min_instances = count
        self.last_active = max(self.last_active, self.timeline.now)
        if count >= 1 and self.state is InstanceState.DOWN:
            self._start()
        elif count == 0:
            self._schedule_scale_in()

    def serve(self, begin: Callable[[], None]) -> bool:
        """Call ``begin`` once an instance is up (now if warm); True if the request did not wait."""
        if self.state is InstanceState.UP:
            begin()
            return True
        self._waiting.append(begin)
        if self.state is InstanceState.DOWN:
            self._start()
        return False

    def begin(self) -> None:
        self.inflight += 1

    def end(self) -> None:
        self.inflight -= 1
        self.last_active = self.timeline.now
        self._schedule_scale_in()

    def _start(self) -> None:
        self.state = InstanceState.STARTING
        self.timeline.schedule(self.cold_start, self._up)

    def _up(self) -> None:
        if self.state is not InstanceState.STARTING:
            return
        self.state = InstanceState.UP
        self.last_active = self.timeline.now
        waiting, self._waiting = self._waiting, []
        for begin in waiting:
            begin()
        self._schedule_scale_in()

    def _schedule_scale_in(self) -> None:
        if self.state is InstanceState.UP and self.min_instances == 0 and self.inflight == 0:
            self.timeline.schedule_at(self.last_active + self.idle_keep, self._maybe_scale_in)

    def _maybe_scale_in(self) -> None:
        idle_long_enough = self.timeline.now >= self.last_active + self.idle_keep
        if self.state is InstanceState.UP and self.min_instances == 0 and self.inflight == 0 and idle_long_enough:
            self.state = InstanceState.DOWN
