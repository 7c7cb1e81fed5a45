"""Which headers cross the gateway, in each direction, and the request id that follows a request.

Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection and never cross a proxy. The client's
credentials (``Authorization``, ``Cookie``, Google's ``X-Goog-*``) are for the gateway only: a backend must
never see them. ``Host`` and ``X-Forwarded-*`` are client-controlled and never used for routing, so they are
not forwarded either; the upstream host comes from the routing table alone.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authorization",
        "proxy-authenticate",
        "proxy-connection",
    }
)
# Never sent upstream: credentials, routing-relevant client claims, and what the gateway sets itself.
_NOT_UPSTREAM = HOP_BY_HOP | {
    "authorization",
    "cookie",
    "host",
    "content-length",
    "forwarded",
    "x-real-ip",
    "x-request-id",
    "expect",
}
_NOT_UPSTREAM_PREFIXES = ("x-goog-", "x-forwarded-", "x-cloud-trace", "x-serverless-")
_NOT_DOWNSTREAM = HOP_BY_HOP | {"content-length", "x-request-id", "date", "server"}
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_UNSAFE_VALUE = re.compile(r"[\r\n\x00]")
_LOCATIONS = ("location", "content-location")
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def request_id(client_value: str | None) -> str:
    """The client's ``x-request-id`` if it is a sane token, else a fresh one."""
    if client_value and _REQUEST_ID.match(client_value):
        return client_value
    raw = bytearray(os.urandom(16))  # what uuid.uuid4().hex returns, without building a UUID object
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    return raw.hex()


def _listed(connection: str) -> set[str]:
    """The header names a ``Connection`` value lists, lowercase."""
    return {name.strip().lower() for name in connection.split(",") if name.strip()}


def upstream_headers(environ: Mapping[str, Any], rid: str) -> dict[str, str]:
    """The client's end-to-end headers minus credentials and routing claims, plus ``x-request-id``.

    Read from the WSGI ``environ``, each header named as werkzeug's ``request.headers`` names it; which
    environ keys carry a header to send is remembered (per key, bounded), not decided again per request.
    """
    dropped = _listed(environ.get("HTTP_CONNECTION") or "")
    headers: dict[str, str] = {}
    for key, value in environ.items():
        try:
            known = _ENVIRON_NAMES[key]
        except KeyError:
            known = _environ_name(key)
            if len(_ENVIRON_NAMES) < _ENVIRON_NAMES_MAX:  # clients choose header names: a bounded memo
                _ENVIRON_NAMES[key] = known
        if known is None or (dropped and known[1] in dropped) or _UNSAFE_VALUE.search(value):
            continue
        if value or key != "CONTENT_TYPE":  # werkzeug omits an empty CONTENT_TYPE, not an empty HTTP_* header
            headers[known[0]] = value
    headers["x-request-id"] = rid
    return headers


# environ key -> (header name as werkzeug spells it, lowercase) of a header sent upstream; None for any other key
_ENVIRON_NAMES: dict[str, tuple[str, str] | None] = {}
_ENVIRON_NAMES_MAX = 1024


def _environ_name(key: str) -> tuple[str, str] | None:
    if key.startswith("HTTP_") and key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
        name = key[5:].replace("_", "-").title()
    elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        name = key.replace("_", "-").title()
    else:
        return None
    lower = name.lower()
    if lower in _NOT_UPSTREAM or lower.startswith(_NOT_UPSTREAM_PREFIXES):
        return None
    return name, lower


def downstream_headers(upstream: Sequence[tuple[str, str]], *, keep_length: bool) -> list[tuple[str, str]]:
    """The backend's end-to-end response header lines (as sent, repeated ones included); ``Content-Length``
    only when the body is relayed as is."""
    lowers = [name.lower() for name, _ in upstream]
    dropped = _listed(next((upstream[i][1] for i, lower in enumerate(lowers) if lower == "connection"), ""))
    pairs = zip(upstream, lowers, strict=True)
    kept = [line for line, lower in pairs if lower not in _NOT_DOWNSTREAM and lower not in dropped]
    if keep_length and "content-length" in lowers:
        kept.append(("Content-Length", upstream[lowers.index("content-length")][1]))
    return kept


def with_sse_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``headers`` with the gateway's SSE headers replacing any the backend sent (each appears once)."""
    ours = {name.lower() for name in SSE_HEADERS}
    return [(k, v) for k, v in headers if k.lower() not in ours] + list(SSE_HEADERS.items())


def public_locations(headers: list[tuple[str, str]], backend: str, prefix: str) -> list[tuple[str, str]]:
    """``Location``/``Content-Location`` as the caller may see them: never a backend's address.

    A redirect to a path on the backend (absolute URL on its own address, or an absolute path) becomes the
    same path under the gateway (``prefix`` is ``/pools/<pool>`` for pass-through, empty for ``/v1``); a
    relative reference is kept; a URL on any other host is dropped (it could name another VM).
    """
    kept = []
    for name, value in headers:
        public = _public_location(value, backend, prefix) if name.lower() in _LOCATIONS else value
        if public is not None:
            kept.append((name, public))
    return kept


def _public_location(value: str, backend: str, prefix: str) -> str | None:
    target, base = urlsplit(value.strip()), urlsplit(backend)
    if target.scheme or target.netloc:
        if (target.scheme.lower(), target.netloc.lower()) != (base.scheme.lower(), base.netloc.lower()):
            return None
    elif not target.path.startswith("/"):
        return value
    path = target.path
    root = base.path.rstrip("/")
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root) :] or "/"
    return prefix + path + (f"?{target.query}" if target.query else "")
