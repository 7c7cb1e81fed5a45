"""Relaying a backend's answer to the caller: one function decides it for every path.

``answer`` turns an opened backend response into an ``Answer`` (status, headers, body chunks). The direct
path sends it as it is. A held stream has already told the caller ``200`` and ``text/event-stream`` (it sent
heartbeats while it waited), so ``in_open_stream`` renders the *same* Answer inside that stream: an SSE body
is relayed, an error keeps the backend's own OpenAI error object (its type, code and message) as a final
``data: {"error": …}`` event, and any other body is relayed as ``data:`` lines. Both paths therefore agree
on what the backend said; only the HTTP status line of a held stream cannot carry it.

``Relay`` is the iterator handed to the WSGI server, with ``close()``, which every WSGI server calls when
the response ends, fails, or the client goes away (a failed write). Cleanup (closing the upstream response,
returning in-flight slots) lives in ``close`` rather than in a generator's ``finally`` because a generator
that never started does not run its ``finally``. For SSE, a cut upstream becomes one final
``data: {"error": …}`` event, so OpenAI SDKs raise an error instead of mistaking a truncated answer for a
complete one.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from gateway import errors
from gateway.access import TAIL, Exchange, first_byte, metered, read_usage
from gateway.errors import ApiError, stream_interrupted
from gateway.headers import downstream_headers, public_locations, with_sse_headers
from gateway.sse import events
from gateway.upstream import StreamCutError, body_chunks
from gateway.upstream_response import UpstreamResponse

log = logging.getLogger(__name__)

HEARTBEAT = b": keepalive\n\n"
_HELD_BODY_LIMIT = 1024 * 1024  # a non-SSE answer inside a held stream is buffered to be split into lines
_JSON = [("Content-Type", "application/json")]
# A ``"usage": null`` member, edited out of the bytes (no parse per event). Its first quote follows ``,`` or
# ``{`` (and blanks), so it opens a string token outside any string (a quote inside one is escaped): a key.
_NULL_USAGE = re.compile(rb',\s*"usage"\s*:\s*null(?=\s*[,}])|(?<=\{)\s*"usage"\s*:\s*null\s*(?:,\s*|(?=\}))')


@dataclass(frozen=True, slots=True)
class Answer:
    """What the caller gets: ``status`` and ``headers`` for a direct response, and the body chunks."""

    status: int
    headers: list[tuple[str, str]]
    chunks: Iterator[bytes]
    sse: bool
    error: ApiError | None = None  # set when the gateway answers in the backend's place


def answer(
    response: UpstreamResponse,
    backend: str,
    request_id: str,
    heartbeat: float,
    *,
    relay_sse: Callable[[Iterator[bytes]], Iterator[bytes]] | None = None,
    exchange: Exchange | None = None,
    strip_usage: bool = False,
    location: tuple[str, str] | None = None,
) -> Answer:
    """The caller's answer for an opened backend ``response`` (the one relay decision for every path).

    ``relay_sse`` replaces the default relaying of a successful SSE body (a cut becomes an error event), e.g.
    by one that continues a cut answer on another backend. ``exchange`` (the access-log record) gets the
    time of the backend's first body byte and the token counts of the ``usage`` the caller is relayed;
    ``strip_usage`` then takes the usage-only event out of an SSE stream (the gateway asked for it).
    ``location`` (the backend's address, the gateway path it is reached under) rewrites redirects so that a
    backend address never reaches the caller.
    """
    if response.status in (401, 403):
        # The backend refused the gateway's own credentials (an overflow IAM problem); the caller's key is
        # fine, so this must not surface as the caller's 401/403.
        return error_answer(errors.bad_gateway(f"Backend {backend} refused the gateway ({response.status})."))
    sse = _is_sse(response)
    headers = downstream_headers(response.lines, keep_length=not sse)
    if location is not None:
        headers = public_locations(headers, *location)
    if not sse:
        plain = plain_body(body_chunks(response), request_id, exchange)
        return Answer(response.status, headers, plain, False)
    chunks = body_chunks(response) if exchange is None else first_byte(body_chunks(response), exchange)
    headers = with_sse_headers(headers)
    chunks = first_byte_heartbeats(chunks, heartbeat)
    relayed = relay_sse(chunks) if relay_sse is not None and response.status == 200 else sse_body(chunks, request_id)
    relayed = _metered(relayed, exchange)
    return Answer(response.status, headers, without_usage(relayed) if strip_usage else relayed, True)


def without_usage(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The SSE stream as the engine sends it without ``include_usage``: no usage-only event (``"choices": []``
    and a ``usage`` object) and no ``"usage": null`` member in the other events (OpenAI's shape)."""
    for event in events(chunks):
        if b'"usage"' not in event.raw:
            yield event.raw
            continue
        raw, nulls = _NULL_USAGE.subn(b"", event.raw)
        if not nulls and b'"choices":[]' in raw.replace(b" ", b""):
            document = event.json()
            if document is not None and document.get("choices") == [] and document.get("usage"):
                continue
        yield raw


def _metered(chunks: Iterator[bytes], exchange: Exchange | None) -> Iterator[bytes]:
    return chunks if exchange is None else metered(chunks, exchange)


def error_answer(error: ApiError) -> Answer:
    """The gateway's own error as an Answer."""
    return Answer(error.status, list(error.headers().items()), iter([error.body()]), False, error)


def in_open_stream(found: Answer) -> Iterator[bytes]:
    """``found`` rendered inside an SSE stream whose ``200`` headers are already out."""
    if found.error is not None:
        yield found.error.sse_event()
        return
    if found.sse and found.status < 300:
        yield from found.chunks
        return
    try:
        body = _bounded(found.chunks, _HELD_BODY_LIMIT)
    except StreamCutError:
        yield stream_interrupted("The backend answer was cut.").sse_event()
        return
    if found.status >= 400:
        yield b"data: " + backend_error(found.status, body) + b"\n\n"
        return
    lines = body.decode("utf-8", "replace").splitlines() or [""]
    yield "".join(f"data: {line}\n" for line in lines).encode() + b"\n"


def backend_error(status: int, body: bytes) -> bytes:
    """The backend's error document if it sent the OpenAI shape, else an equivalent one naming the status."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        document = None
    if isinstance(document, dict) and isinstance(document.get("error"), dict):
        return json.dumps({"error": document["error"]}, separators=(",", ":")).encode()
    text = body[:1024].decode("utf-8", "replace").strip()
    kind = "invalid_request_error" if status < 500 else "api_error"
    return ApiError(status, text or f"Backend answered {status}.", kind, f"upstream_{status}").body()


def _bounded(chunks: Iterator[bytes], limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            break
        parts.append(chunk)
    return b"".join(parts)


def _is_sse(response: UpstreamResponse) -> bool:
    return (response.header("content-type") or "").lower().startswith("text/event-stream")


class Relay:
    """Iterates ``chunks``; ``close`` closes them and calls ``finish`` exactly once, then ``after`` callbacks.

    The WSGI server calls ``close`` itself: werkzeug hands a ``direct_passthrough`` body over as it is, so a
    Flask response's ``call_on_close`` callbacks would never run for it; ``after`` is their replacement.
    """

    def __init__(self, chunks: Iterator[bytes], finish: Callable[[], None]) -> None:
        self._chunks = chunks
        self._finish: Callable[[], None] | None = finish
        self._after: list[Callable[[], None]] = []

    def after(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the response is closed (after ``finish``)."""
        self._after.append(callback)

    def __iter__(self) -> Relay:
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)

    def close(self) -> None:
        finish, self._finish = self._finish, None
        if finish is None:
            return
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            try:
                finish()
            finally:
                for callback in self._after:
                    callback()


def sse_body(chunks: Iterator[bytes], request_id: str) -> Iterator[bytes]:
    """Relay an SSE body; if the backend stream is cut, end it with an SSE error event."""
    try:
        yield from chunks
    except StreamCutError as e:
        log.warning("stream cut by backend", extra={"request_id": request_id, "error": str(e)})
        yield stream_interrupted(f"The backend stream was interrupted (request {request_id}).").sse_event()


def first_byte_heartbeats(chunks: Iterator[bytes], every: float) -> Iterator[bytes]:
    """Relay ``chunks``, sending SSE comments every ``every`` seconds until the first chunk arrives.

    An engine may send nothing between its response headers and the first token (a long prefill): idle
    timeouts of proxies and load balancers on the way would cut such a stream. The first chunk is read on a
    helper thread (a greenlet under gevent) so the wait can be interrupted; later chunks are read directly.
    """
    pending: queue.SimpleQueue[tuple[str, object]] = queue.SimpleQueue()

    def pull_first() -> None:
        try:
            pending.put(("chunk", next(chunks)))
        except StopIteration:
            pending.put(("end", None))
        except BaseException as e:  # handed to the relaying side, which raises it there
            pending.put(("error", e))

    threading.Thread(target=pull_first, name="gateway-first-chunk", daemon=True).start()
    while True:
        try:
            kind, value = pending.get(timeout=every)
        except queue.Empty:
            yield HEARTBEAT
            continue
        break
    if kind == "error":
        raise value  # type: ignore[misc]
    if kind == "chunk":
        yield value  # type: ignore[misc]
        yield from chunks


def plain_body(chunks: Iterator[bytes], request_id: str, exchange: Exchange | None = None) -> Iterator[bytes]:
    """Relay a non-SSE body; a cut is re-raised so the server drops the connection (the client sees it).

    With ``exchange``, also what ``access.first_byte`` and ``access.metered`` note (the first byte's time,
    the token counts of the body's ``usage``), in this one generator: a plain answer passes through one
    layer, not three.
    """
    tail = b""
    try:
        for chunk in chunks:
            if exchange is not None:
                if exchange.first_byte is None:
                    exchange.first_byte = time.monotonic()
                tail = (tail + chunk)[-TAIL:]
            yield chunk
    except StreamCutError:
        log.warning("response cut by backend", extra={"request_id": request_id})
        raise
    if exchange is not None:
        read_usage(tail, exchange)
