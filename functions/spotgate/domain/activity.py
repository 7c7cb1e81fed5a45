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
