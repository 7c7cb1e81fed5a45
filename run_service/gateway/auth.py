"""Who is calling: an API key (``sg-…``) or a Google ID token, checked before any body byte is read.

API keys are looked up by the SHA-256 of what the caller presents (the store never holds a secret) and the
stored hash is compared in constant time. ID tokens are verified against Google's (or the sandbox's)
certificates, which are cached, for an audience that is this gateway, and the verified email must be an
allowed principal (an exact address or ``@domain``). Every failure is a 401 in the OpenAI shape, except a
valid Google identity that is simply not allowed, which is a 403.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.auth import exceptions as auth_exceptions
from google.auth import transport as auth_transport
from google.oauth2 import id_token

from gateway.errors import ApiError, invalid_api_key, permission_denied
from gateway.table import LiveTable
from spotgate.apikeys import hash_secret, looks_like_jwt, looks_like_key
from spotgate.domain import ApiKey
from spotgate.ports import Clock
from spotgate.settings import GatewaySettings

_MAX_TOKEN = 16 * 1024  # Google ID tokens are about 1 KiB
_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: ``key`` for API-key callers, None for Google identities (all pools)."""

    name: str
    key: ApiKey | None = None

    def allows_pool(self, pool: str) -> bool:
        return self.key is None or self.key.allows_pool(pool)

    @property
    def allows_passthrough(self) -> bool:
        """API keys need the explicit scope; an allowed Google identity (an operator's workload) has it."""
        return self.key is None or self.key.passthrough


class CachingRequest(auth_transport.Request):
    """A google-auth transport that remembers certificate responses: fresh for ``ttl``, usable for ``max_stale``.

    Google rotates its signing keys days ahead of use, so minutes of caching never rejects a good token, and
    it keeps a certificate fetch off nearly every request. When the cache is due, one caller refetches while
    the others keep using the cached certificates; a failed refetch (transport error or non-200) falls back
    to them for up to ``max_stale`` instead of failing every ID-token caller.
    """

    def __init__(
        self,
        inner: auth_transport.Request,
        ttl: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
        max_stale: float = 86400.0,
    ):
        self._inner = inner
        self._ttl = ttl
        self._max_stale = max_stale
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._refreshing: set[str] = set()

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Any = None,
        timeout: Any = None,
        **kwargs: Any,
    ) -> Any:
        if method != "GET":
            return self._inner(url, method=method, body=body, headers=headers, timeout=timeout, **kwargs)
        hit = self._cache.get(url)
        age = None if hit is None else self._monotonic() - hit[0]
        if hit is not None and age is not None and age < self._ttl:
            return hit[1]
        with self._lock:
            someone_else = url in self._refreshing
            if not someone_else:
                self._refreshing.add(url)
        if someone_else and hit is not None and age is not None and age < self._max_stale:
            return hit[1]  # another caller is refetching: the cached certificates are still good
        try:
            response = self._inner(url, method=method, body=body, headers=headers, timeout=timeout, **kwargs)
        except auth_exceptions.TransportError:
            if hit is not None and age is not None and age < self._max_stale:
                return hit[1]
            raise
        finally:
            if not someone_else:
                with self._lock:
                    self._refreshing.discard(url)
        if response.status == 200:
            self._cache[url] = (self._monotonic(), response)
        elif hit is not None and age is not None and age < self._max_stale:
            return hit[1]
        return response


class Authenticator:
    """Turns an ``Authorization`` header into a Principal, or raises ApiError (401/403)."""

    def __init__(
        self, table: LiveTable, settings: GatewaySettings, clock: Clock, request: auth_transport.Request
    ) -> None:
        self._table = table
        self._clock = clock
        self._request = request
        self._certs_url = settings.certs_url
        self._audiences = [a for a in (settings.url, *settings.audiences) if a]
        self._principals = tuple(p.strip().lower() for p in settings.allowed_principals if p.strip())

    def authenticate(self, authorization: str | None) -> Principal:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise invalid_api_key("Missing credentials: send 'Authorization: Bearer <API key or ID token>'.")
        if looks_like_key(token):
            return self._api_key(token)
        if looks_like_jwt(token):
            return self._google(token)
        raise invalid_api_key("Incorrect API key provided.")

    def _api_key(self, secret: str) -> Principal:
        digest = hash_secret(secret)
        key = self._table.key_by_hash(digest)
        if key is None or not hmac.compare_digest(key.secret_hash, digest):
            raise invalid_api_key("Incorrect API key provided.")
        if key.disabled:
            raise invalid_api_key("This API key has been revoked.")
        if key.expires_at is not None and key.is_expired(self._clock.now()):  # no clock read for most keys
            raise invalid_api_key("This API key has expired.")
        return Principal(key.key_id, key)

    def _google(self, token: str) -> Principal:
        if not self._audiences:
            raise invalid_api_key("This gateway does not accept Google ID tokens.")
        if len(token) > _MAX_TOKEN:
            raise invalid_api_key("Invalid Google ID token.")
        try:
            claims = id_token.verify_token(token, self._request, audience=self._audiences, certs_url=self._certs_url)
        except auth_exceptions.TransportError:
            # The certificates could not be fetched: the token may be fine, so this is ours to retry, not a 401.
            raise ApiError(503, "Cannot verify ID tokens right now.", "service_unavailable", "certs_unavailable",
                           retry_after=5) from None  # fmt: skip
        except (ValueError, RecursionError, auth_exceptions.GoogleAuthError):  # RecursionError: nested JSON
            raise invalid_api_key("Invalid Google ID token.") from None
        email = str(claims.get("email", "")).lower()
        if claims.get("iss") not in _ISSUERS or not email or claims.get("email_verified") is not True:
            raise invalid_api_key("The ID token has no verified Google identity.")
        if not self._allowed(email, claims.get("hd")):
            raise permission_denied(f"{email} may not call this gateway.")
        return Principal(email)

    def _allowed(self, email: str, hosted_domain: object) -> bool:
        """An exact address, or ``@domain`` for an account *managed* by that Google Workspace domain.

        The email's suffix alone is not enough: anyone can make a Google account for an address at a domain
        they do not control the Workspace of; only the ``hd`` claim says the domain manages the account.
        """
        domain = email.rpartition("@")[2]
        return email in self._principals or ("@" + domain in self._principals and hosted_domain == domain)
