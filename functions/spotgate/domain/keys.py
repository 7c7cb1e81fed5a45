"""API keys as stored: only the SHA-256 hash of the secret, never the secret itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A gateway credential and its scopes.

    ``key_id`` is a short public identifier (shown in ``keys list``, logged); ``secret_hash`` is the hex
    SHA-256 of the full ``sg-…`` key. An empty ``pools`` tuple means every pool. ``rpm`` and
    ``max_concurrent`` of 0 mean unlimited. ``passthrough`` allows ``/pools/<pool>/…`` (raw calls to the
    pool's backends, within what the pool allows); off by default, a key calls only the OpenAI endpoints.
    """

    key_id: str
    name: str
    secret_hash: str
    created_at: datetime
    pools: tuple[str, ...] = ()
    rpm: int = 0
    max_concurrent: int = 0
    expires_at: datetime | None = None
    disabled: bool = False
    passthrough: bool = False

    def allows_pool(self, pool: str) -> bool:
        """True if this key may call ``pool``."""
        return not self.pools or pool in self.pools

    def is_expired(self, now: datetime) -> bool:
        """True once ``now`` has reached ``expires_at``."""
        return self.expires_at is not None and now >= self.expires_at


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """What one key used of one pool in one hour (``hour`` is the start of the UTC hour).

    Added up by the store: the gateway records deltas, so every worker and instance can write its own.
    ``gpu_seconds`` is backend time: from the backend's answer to the end of the response, per request.
    """

    key_id: str
    pool: str
    hour: datetime
    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    gpu_seconds: float = 0.0
