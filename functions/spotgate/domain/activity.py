"""Gateway traffic per pool, the only document kind the gateway writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Activity:
    """What the gateway saw for one pool, flushed every few seconds.

    ``last_request_at`` drives scale-to-zero; ``backend_last_request`` lets the planner stop the longest-idle
    VM and respect a drain grace; ``inflight`` and ``ready_backends`` let it scale toward ``max_ready``.
    ``requests_total`` is cumulative since the document was created.

    Per-VM fields (keyed by backend = VM name), summed or merged over every live gateway instance's record:
    ``backend_inflight`` is the requests in flight on that VM now; ``backend_last_finished`` is when the last
    request on it finished (scale-down must never cut a stream, so idleness counts from the end of a request).
    """

    pool: str
    last_request_at: datetime | None = None
    inflight: int = 0
    requests_total: int = 0
    backend_last_request: dict[str, datetime] = field(default_factory=dict)
    updated_at: datetime | None = None
    backend_inflight: dict[str, int] = field(default_factory=dict)
    backend_last_finished: dict[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GatewayActivity:
    """One gateway instance's record for one pool: the only writer of it is that instance (DESIGN §2.1).

    Cloud Run runs several gateway instances; each writes its own record whole at every flush and never
    touches another's, so nothing is overwritten: the store sums the gauges of the live records (those not
    past ``expires_at``, so a vanished instance stops counting) and takes the newest time of every record.
    ``requests_total`` is this instance's cumulative count.
    """

    pool: str
    gateway: str  # the writing instance's id, unique per process
    at: datetime  # when this record was written
    expires_at: datetime  # after this, its gauges no longer count (the instance stopped refreshing it)
    inflight: int = 0  # requests in flight through this instance: proxied or held for a waking VM
    backend_inflight: dict[str, int] = field(default_factory=dict)
    last_request_at: datetime | None = None
    backend_last_request: dict[str, datetime] = field(default_factory=dict)
    backend_last_finished: dict[str, datetime] = field(default_factory=dict)
    requests_total: int = 0
