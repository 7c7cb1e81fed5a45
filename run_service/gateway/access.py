"""One access line per request: who called, where it went, how it went, what it used.

Why: the gateway is where per-key accountability lives, and the platform's own request log knows neither
the key nor the backend. An ``Exchange`` is created for every request, filled in as the request proceeds
(caller after authentication, backend when one answers, flags when it is held or failed over, tokens when
the backend reports ``usage``) and logged exactly once, when the WSGI server closes the response, so the
duration includes the whole body. It names the caller by key id or ID-token email, never by secret.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

log = logging.getLogger("gateway.access")

TAIL = 8192  # the backend's ``usage`` object comes last in its body (JSON) or stream (the final event)
_USAGE = re.compile(rb'"usage"\s*:\s*\{')
_PROMPT = re.compile(rb'"prompt_tokens"\s*:\s*(\d+)')
_COMPLETION = re.compile(rb'"completion_tokens"\s*:\s*(\d+)')


@dataclass(slots=True)
class Exchange:
    """What one request did; ``finish`` logs it (once)."""

    request_id: str
    method: str
    path: str  # without the query, which may carry anything
    started: float
    caller: str | None = None  # API key id or Google identity email
    pool: str | None = None
    backend: str | None = None
    kind: str | None = None  # vm or overflow
    backend_started: float | None = None
    backend_ended: float | None = None
    first_byte: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    held: bool = False
    failed_over: bool = False
    continued: int = 0  # how many times a stream cut mid-answer was continued on another backend
    logged: bool = False

    def finish(self, status: int, now: float) -> None:
        """Log the access line (only the first call logs)."""
        if self.logged:
            return
        self.logged = True
        if self.backend_started is not None and self.backend_ended is None:
            self.backend_ended = now
        if log.isEnabledFor(logging.INFO):  # the fields are built only for a line that is written
            log.info("access", extra=self.fields(status, now))

    def fields(self, status: int, now: float) -> dict[str, object]:
        first = None if self.first_byte is None else round((self.first_byte - self.started) * 1000, 2)
        return {
            "access": True, "request_id": self.request_id, "method": self.method, "path": self.path,
            "caller": self.caller, "pool": self.pool, "backend": self.backend, "backend_kind": self.kind,
            "status": status, "duration_ms": round((now - self.started) * 1000, 2), "ttfb_ms": first,
            "tokens_in": self.tokens_in, "tokens_out": self.tokens_out,
            "held": self.held, "failed_over": self.failed_over, "continued": self.continued,
        }  # fmt: skip

    @property
    def backend_seconds(self) -> float:
        """Seconds a backend worked on this request (zero if none answered)."""
        if self.backend_started is None or self.backend_ended is None:
            return 0.0
        return max(0.0, self.backend_ended - self.backend_started)


def refused(request_id: str, method: str | None, path: str | None, status: int, code: str) -> None:
    """The access line of a request gunicorn's parser refused (``gateway.refusals``) before the app saw it.

    Its caller is unknown (``caller`` null): it was refused before its headers were read or authenticated,
    and nothing else of what it sent is logged. ``code`` is the machine code the client was given.
    """
    fields = Exchange(request_id, "", "", 0.0).fields(status, 0.0)
    log.info("access", extra={**fields, "method": method, "path": path, "code": code, "refused_by": "gunicorn"})


def first_byte(
    chunks: Iterator[bytes], exchange: Exchange, monotonic: Callable[[], float] = time.monotonic
) -> Iterator[bytes]:
    """Relay ``chunks`` (a backend's body), noting when its first byte arrived."""
    for chunk in chunks:
        if exchange.first_byte is None:
            exchange.first_byte = monotonic()
        yield chunk


def metered(chunks: Iterator[bytes], exchange: Exchange) -> Iterator[bytes]:
    """Relay ``chunks`` (what the caller gets), then note the token counts of the last ``usage`` object."""
    tail = b""
    for chunk in chunks:
        tail = (tail + chunk)[-TAIL:]
        yield chunk
    read_usage(tail, exchange)


def read_usage(tail: bytes, exchange: Exchange) -> None:
    """Set the exchange's token counts from the last ``usage`` object in ``tail``, if there is one."""
    starts = [match.end() for match in _USAGE.finditer(tail)]
    if not starts:
        return
    rest = tail[starts[-1] :]
    prompt, completion = _PROMPT.search(rest), _COMPLETION.search(rest)
    if prompt is not None:
        exchange.tokens_in = int(prompt.group(1))
        exchange.tokens_out = int(completion.group(1)) if completion is not None else 0
