"""One answer over several backends: relay a stream and, when its backend dies mid-answer, continue it elsewhere.

``continued_stream`` relays the first backend's events as they are, event by event, while a ``Transcript``
notes what the caller received. If the stream ends abnormally (reset, EOF without ``[DONE]``) it asks
``reopen`` for a continuation on another backend and relays that in the first stream's identity
(``continuation.rewrite``), possibly several times (``limit``). The caller sees one stream and one
``[DONE]``, preceded by an SSE comment ``: spotgate-continued N`` when it was continued. Where a faithful
continuation is impossible, or no backend takes it, the stream ends with today's SSE error event.

``reopen`` is the proxy's: given the continuing request's body, it yields heartbeats while it waits for a
backend and returns the new backend's raw SSE chunks, or the ApiError that says why there are none.
Everything else here is pure relaying.

The original request is needed only when a stream is cut: ``original`` parses it then (from the raw bytes
the call holds anyway), and the parsed form is dropped before anything else runs (``_following`` yields to
no other greenlet), so an uncut stream holds no parsed body and a worker at most one at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterator
from typing import Any

from gateway import sse
from gateway.continuation import Kind, Transcript, length_finish, next_body, rewrite
from gateway.errors import ApiError, stream_interrupted
from gateway.payload import encode_object
from gateway.upstream import StreamCutError

log = logging.getLogger(__name__)

Reopen = Callable[[bytes], Generator[bytes, None, "Iterator[bytes] | ApiError"]]
DONE = b"data: [DONE]\n\n"
CONTINUED_COMMENT = "spotgate-continued"


def continued_stream(
    first: Iterator[bytes],
    kind: Kind,
    original: Callable[[], dict[str, Any]],
    reopen: Reopen,
    *,
    request_id: str,
    on_cut: Callable[[], None],
    limit: int = 3,
) -> Iterator[bytes]:
    """The caller's stream: ``first`` relayed, continued through ``reopen`` after each cut (at most ``limit``).

    ``original`` returns the request's body, parsed (called only at a cut). ``on_cut`` is called when a
    backend's stream has died, before the next one is opened (to release it).
    """
    seen = Transcript(kind)
    source, parts, relayed_before = first, 0, 0
    while True:
        cut = yield from _relay(source, seen, parts, relayed_before)
        if cut is None:
            return
        on_cut()
        log.warning("stream cut by backend", extra={"request_id": request_id, "error": cut, "part": parts})
        if seen.finished:  # the answer was complete; only the end marker was lost
            yield DONE
            return
        reason = seen.problem or (f"it was continued {limit} times already" if parts >= limit else None)
        following = None if reason else _following(kind, original, seen)
        if reason is None and following is None:  # cut exactly at its length limit: nothing left to generate
            yield sse.encode(length_finish(kind, seen))
            yield from _end(parts)
            return
        result = _interrupted(request_id, reason) if following is None else (yield from reopen(following))
        if isinstance(result, ApiError):
            log.warning("stream not continued", extra={"request_id": request_id, "reason": result.message})
            yield result.sse_event()
            return
        parts, relayed_before, source = parts + 1, seen.tokens, result
        log.info("stream continued", extra={"request_id": request_id, "part": parts, "tokens_before": seen.tokens})


def _following(kind: Kind, original: Callable[[], dict[str, Any]], seen: Transcript) -> bytes | None:
    """The continuing request's body, or None when the length limit is reached; nothing parsed outlives it."""
    body = next_body(kind, original(), seen)
    return None if body is None else encode_object(body)


def _relay(
    source: Iterator[bytes], seen: Transcript, part: int, relayed_before: int
) -> Generator[bytes, None, str | None]:
    """Relay ``source`` until ``[DONE]`` (returns None) or its end or cut (returns what happened)."""
    rewriting = part > 0 and seen.id is not None
    try:
        for event in sse.events(source):
            if event.done:
                yield from _end(part)
                return None
            document = event.json()
            if document is None or "error" in document:  # comments, heartbeats, the engine's own error event
                yield event.raw
                continue
            if rewriting:
                document = rewrite(seen.kind, document, seen, relayed_before)
                if document is None:
                    continue
            seen.observe(document)
            yield sse.encode(document) if rewriting else event.raw
    except StreamCutError as e:
        return str(e) or "the backend connection was reset"
    return "the backend stream ended without [DONE]"


def _end(parts: int) -> Iterator[bytes]:
    if parts:
        yield sse.comment(f"{CONTINUED_COMMENT} {parts}")
    yield DONE


def _interrupted(request_id: str, reason: str | None) -> ApiError:
    return stream_interrupted(
        f"The backend stream was interrupted (request {request_id}) and could not be continued: {reason}."
    )
