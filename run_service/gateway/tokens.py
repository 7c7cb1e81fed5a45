"""ID tokens the gateway presents to Cloud Run overflow services (which require IAM-authenticated callers).

``TokenSource`` is the seam: production fetches tokens from the metadata server with
``google.oauth2.id_token.fetch_id_token`` (the Cloud Run service account's identity); tests inject a source
that signs tokens with a sandbox identity. Tokens are cached per audience until ``refresh_before`` ahead of
their ``exp``, so a steady stream of overflow requests costs one metadata call per token lifetime.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from google.auth import exceptions as auth_exceptions
from google.auth import jwt
from google.auth import transport as auth_transport
from google.oauth2 import id_token

from spotgate.errors import UnavailableError
from spotgate.ports import Clock


class TokenSource(Protocol):
    def id_token(self, audience: str) -> str:
        """A valid Google ID token for ``audience``. Raises UnavailableError."""
        ...


@dataclass(frozen=True, slots=True)
class _Cached:
    token: str
    expires_at: float


class MetadataTokenSource:
    """ID tokens of this workload's service account, from the metadata server, cached per audience."""

    def __init__(
        self, clock: Clock, request: auth_transport.Request, refresh_before: timedelta = timedelta(minutes=5)
    ) -> None:
        self._clock = clock
        self._request = request
        self._refresh_before = refresh_before.total_seconds()
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def id_token(self, audience: str) -> str:
        cached = self._fresh(audience)
        if cached is not None:
            return cached
        with self._lock:  # one fetch at a time; whoever waited finds the fresh token
            cached = self._fresh(audience)
            if cached is not None:
                return cached
            token = self._fetch(audience)
            claims: dict[str, Any] = jwt.decode(token, verify=False)
            self._cache[audience] = _Cached(token, float(claims.get("exp", 0)))
            return token

    def _fresh(self, audience: str) -> str | None:
        cached = self._cache.get(audience)
        if cached and self._clock.now().timestamp() < cached.expires_at - self._refresh_before:
            return cached.token
        return None

    def _fetch(self, audience: str) -> str:
        try:
            token: str = id_token.fetch_id_token(self._request, audience)
        except (auth_exceptions.GoogleAuthError, ValueError) as e:
            raise UnavailableError(f"cannot fetch an ID token for {audience}: {e}") from e
        return token
