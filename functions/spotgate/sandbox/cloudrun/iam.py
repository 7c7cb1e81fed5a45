"""Cloud Run IAM in miniature: who may invoke a sandbox overflow service.

A caller needs ``Authorization: Bearer <Google ID token>`` whose signature verifies against the certs URL
(the sandbox identity's, or Google's), whose ``aud`` is the service's audience, and whose ``email`` is an
allowed invoker, exactly what ``roles/run.invoker`` on a service account amounts to. google-auth is imported
inside the methods: it pulls in ``ssl``, which the engine must import only after gevent has patched.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, cast

from spotgate.errors import PermissionDeniedError

if TYPE_CHECKING:
    from google.auth import transport

CERTS_TTL = 60.0  # seconds a fetched certs document is reused


class UnauthenticatedError(PermissionDeniedError):
    """No token, or one that does not verify (Cloud Run answers 401)."""


class InvokerCheck:
    """Verifies ID tokens for one audience and set of invokers; raises instead of returning False."""

    def __init__(self, audience: str, certs_url: str, invokers: tuple[str, ...]) -> None:
        from google.auth.transport import requests as google_requests

        self.audience = audience
        self.certs_url = certs_url
        self.invokers = invokers
        self._request = cast("transport.Request", _CachingRequest(google_requests.Request()))

    def check(self, authorization: str) -> str:
        """The invoker's email. Raises UnauthenticatedError (401) or PermissionDeniedError (403)."""
        from google.auth.exceptions import GoogleAuthError
        from google.oauth2 import id_token

        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise UnauthenticatedError("Missing Authorization: Bearer <ID token>")
        try:
            claims = id_token.verify_token(token, self._request, audience=self.audience, certs_url=self.certs_url)
        except (ValueError, GoogleAuthError) as e:
            raise UnauthenticatedError(f"Invalid ID token: {e}") from e
        email = str(claims.get("email", ""))
        if email not in self.invokers:
            raise PermissionDeniedError(f"{email or 'The caller'} may not invoke this service")
        return email


class _CachingRequest:
    """A google-auth transport that reuses certs responses (``verify_token`` fetches on every call)."""

    def __init__(self, inner: transport.Request) -> None:
        self._inner = inner
        self._cache: dict[str, tuple[float, transport.Response]] = {}

    def __call__(self, url: str, method: str = "GET", **kwargs: Any) -> transport.Response:
        hit = self._cache.get(url)
        if method == "GET" and hit and time.monotonic() - hit[0] < CERTS_TTL:
            return hit[1]
        response: transport.Response = self._inner(url, method=method, **kwargs)
        if method == "GET" and response.status == 200:
            self._cache[url] = (time.monotonic(), response)
        return response
