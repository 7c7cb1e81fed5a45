"""API key secrets: how they are minted, recognised and hashed.

Shared by the gateway (which only ever hashes what a caller presents and looks the hash up) and the CLI
(which mints a key, shows it once, and stores only its hash). A key is ``sg-`` followed by 43 URL-safe
base64 characters (32 random bytes), so it is recognisable in logs and secret scanners and cannot be
confused with a Google ID token (a JWT, three dot-separated base64url parts). Keys carry enough entropy that
an unsalted SHA-256 is the right storage format: it allows lookup by hash, and brute force is hopeless.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from spotgate.errors import ConfigError
from spotgate.fleet import parse_duration

PREFIX = "sg-"
SECRET_BYTES = 32
_KEY_SHAPE = re.compile(r"^sg-[A-Za-z0-9_-]{43,128}$")
_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly minted key: ``secret`` is shown once and never stored; ``secret_hash`` is what is stored."""

    key_id: str
    secret: str
    secret_hash: str


def generate_key() -> NewKey:
    """Mint a new ``sg-…`` key with a short public id (``k-`` + 10 hex characters)."""
    secret = PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    return NewKey(key_id="k-" + secrets.token_hex(5), secret=secret, secret_hash=hash_secret(secret))


def hash_secret(secret: str) -> str:
    """The hex SHA-256 of the full key, the only form in which keys are stored."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def looks_like_key(token: str) -> bool:
    """True if ``token`` has the shape of a spotgate API key (it may still be unknown or revoked)."""
    return bool(_KEY_SHAPE.match(token))


def looks_like_jwt(token: str) -> bool:
    """True if ``token`` has the shape of a JWT (a Google ID token candidate)."""
    return bool(_JWT_SHAPE.match(token)) and token.startswith("eyJ")


def parse_expiry(value: str, now: datetime) -> datetime:
    """``30d``/``12h``/``90m`` from ``now``, or an ISO 8601 time (UTC if no offset). Raises ConfigError."""
    text = value.strip()
    try:
        return now + parse_duration(text)
    except ValueError:
        pass
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"invalid expiry {value!r}: use a duration like 30d or an ISO 8601 time") from None
    at = at if at.tzinfo is not None else at.replace(tzinfo=now.tzinfo)
    if at <= now:
        raise ConfigError(f"expiry {value!r} is in the past")
    return at
