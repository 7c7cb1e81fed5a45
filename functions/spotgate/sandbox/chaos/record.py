"""What a chaos run observed, as plain values: the input of the (pure) report and verdict.

Why separate from the run itself: the run is threads, HTTP and polling; judging it is arithmetic over these
records. Keeping the records plain (times in wall seconds, relative to nothing in particular, usually the
epoch) lets the verdict be tested with hand-written tables and lets a saved run be judged again.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from spotgate.sandbox.chaos.spans import Span


class Outcome(enum.StrEnum):
    """How one client request ended, from the client's side of the wire."""

    OK = "ok"
    FAILED_BEFORE_FIRST_BYTE = "failed_before_first_byte"  # an HTTP error, refused, or no token ever came
    CUT = "cut_mid_stream"  # a response had started, then ended with an error event or a broken connection


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request: ``backend`` is the ``x-spotgate-backend`` that answered, when one did."""

    pool: str
    stream: bool
    start: float
    end: float
    outcome: Outcome
    backend: str | None = None
    error: str = ""
    continued: bool = False  # a stream completed by the gateway's continuation after its backend died


@dataclass(frozen=True, slots=True)
class VmRun:
    """One RUNNING stretch of a VM: ``running`` until STOPPING (serving time), ``billed`` until TERMINATED.

    ``booting_since`` to ``running.start`` is the boot as it really took, to compare with the fleet's.
    """

    pool: str
    instance: str
    provisioning_model: str  # "SPOT" or "STANDARD"
    running: Span
    billed: Span
    booting_since: float | None = None  # when the run saw it PROVISIONING (None: already booting when watched)


@dataclass(frozen=True, slots=True)
class RouteSpan:
    """A stretch during which a routing-table entry had one state (as the run saw it while polling)."""

    pool: str
    backend: str
    kind: str  # "vm" or "overflow"
    state: str  # RouteState value
    span: Span


@dataclass(frozen=True, slots=True)
class Injection:
    """A fault the run injected: ``preempt``/``maintenance`` of an instance, or a ``stockout`` of a zone."""

    kind: str
    at: float
    target: str
    pool: str | None = None
    duration: float = 0.0

    @property
    def span(self) -> Span:
        return Span(self.at, self.at + self.duration)


@dataclass(frozen=True, slots=True)
class PoolRules:
    """What the verdict needs of a pool's spec, in wall seconds (``boot`` is boot + load over the speedup)."""

    name: str
    min_ready: int
    idle_timeout: float
    boot: float
    has_overflow: bool
    zones: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per GPU-hour (the fleet's ``prices``)."""

    spot: float
    standard: float
    overflow: float


@dataclass(frozen=True, slots=True)
class Observations:
    """Everything one chaos run recorded; ``window`` is the chaos phase the criteria judge."""

    window: Span
    tick: float
    speedup: float
    rates: Rates
    pools: tuple[PoolRules, ...]
    requests: tuple[RequestRecord, ...] = ()
    vm_runs: tuple[VmRun, ...] = ()
    routes: tuple[RouteSpan, ...] = ()
    injections: tuple[Injection, ...] = ()
    overflow_warm: tuple[tuple[str, Span], ...] = ()  # (pool, span with service-level min instances >= 1)
    push: dict[str, int] = field(default_factory=dict)  # Pub/Sub push counters (PushStats fields)
