"""Routing-table entries: where the gateway may send a pool's requests, and whether it should now."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class RouteState(enum.StrEnum):
    """Lifecycle of a backend as the gateway sees it."""

    READY = "ready"  # RUNNING and the engine answered its health check: send traffic
    STARTING = "starting"  # booting or loading the model: do not send traffic yet
    DRAINING = "draining"  # preemption or shutdown notice received: no new requests
    DOWN = "down"  # stopped or stopping


class BackendKind(enum.StrEnum):
    """A pool's backends are its GPU VMs, plus at most one Cloud Run overflow service."""

    VM = "vm"
    OVERFLOW = "overflow"


@dataclass(frozen=True, slots=True)
class Route:
    """One backend of a pool.

    ``address`` is a base URL (``http://10.0.0.7:8000`` for a VM, ``https://…run.app`` for overflow) and
    is the only place the gateway ever takes an upstream host from.
    """

    pool: str
    backend: str
    kind: BackendKind
    address: str
    state: RouteState
    reason: str
    updated_at: datetime
    zone: str = ""

    @property
    def key(self) -> str:
        """Document id: unique across pools because VM names are unique in a project."""
        return f"{self.pool}.{self.backend}"
