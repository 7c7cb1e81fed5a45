"""Pass-through paths (``/pools/<pool>/<path>``): what a client may ask a backend for.

The path is appended to the backend's address from the routing table, so it must stay a path on that
backend: no ``..`` or ``.`` segments (nor ``..;x``, which servers that strip path parameters read as ``..``),
no empty segments (``//host`` would read as an authority), no backslashes or control characters, and no
percent-encoding that decodes into any of those. Anything that
needs a second decode to be judged (``%252e``) is refused rather than guessed at. The checks run on the raw
request target, before any framework decoding, so encoded variants are judged exactly once. An encoded
slash (``%2F``, e.g. a model id ``org%2Fname``) is kept encoded: segments are split before decoding.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from gateway.errors import ApiError, bad_request

# RFC 3986 pchar without '%' (percent-encoding is decoded before this check).
_SEGMENT = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=:@-]+$")
_QUERY = re.compile(r"^[\x21-\x7e]*$")
_PCHAR_SAFE = "~!$&'()*+,;=:@"


def _refuse(why: str) -> ApiError:
    return bad_request(f"Invalid pass-through path: {why}.", param="path", code="invalid_path")


def split_target(raw_target: str) -> tuple[str, str]:
    """``(path, query)`` of a raw request target; refuses the absolute form (``http://host/...``)."""
    if not raw_target.startswith("/") or raw_target.startswith("//"):
        raise _refuse("the request target must be a path")
    path, _, query = raw_target.partition("?")
    if not _QUERY.match(query):
        raise _refuse("the query has characters that must be percent-encoded")
    return path, query


def backend_path(raw_path: str, prefix: str) -> str:
    """The normalised, re-encoded path to send upstream for ``raw_path`` below ``prefix``.

    ``prefix`` is ``/pools/<pool>/``. Raises ApiError (400) for any path that could escape the backend.
    """
    if not raw_path.startswith(prefix):
        raise _refuse("it does not name the pool plainly")
    segments = raw_path[len(prefix) :].split("/")
    trailing = len(segments) > 1 and segments[-1] == ""
    body = segments[:-1] if trailing else segments
    if body == [""]:
        return "/"
    encoded = "/".join(quote(_segment(raw), safe=_PCHAR_SAFE) for raw in body)
    return "/" + encoded + ("/" if trailing else "")


def _segment(raw: str) -> str:
    """One decoded path segment, judged. An encoded ``/`` (``%2F``) stays inside its segment (re-encoded
    upstream), but what it separates is judged like segments too, for backends that decode it."""
    try:
        decoded = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise _refuse("it is not valid UTF-8 once decoded") from None
    if "%" in decoded:
        raise _refuse("doubly encoded characters are not accepted")
    for part in decoded.split("/"):
        if part in ("", ".", "..") or part.partition(";")[0] in (".", ".."):  # '..;x' is '..' to Tomcat, Jetty
            raise _refuse("empty, '.' and '..' segments are not accepted")
        if not _SEGMENT.match(part):
            raise _refuse("it contains characters that are not allowed in a path")
    return decoded
