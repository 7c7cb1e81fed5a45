"""The response body handed to the WSGI server: backend chunks as they arrive, and a guaranteed cleanup.

``Relay`` is an iterator with ``close()``, which every WSGI server calls when the response ends, fails, or
the client goes away (a failed write). Cleanup (closing the upstream response, returning in-flight slots)
lives in ``close`` rather than in a generator's ``finally`` because a generator that never started does not
run its ``finally``. For SSE, a cut upstream becomes one final ``data: {"error": …}`` event, so OpenAI SDKs
raise an error instead of waiting forever or mistaking a truncated answer for a complete one.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator

from gateway.errors import stream_interrupted
from gateway.upstream import StreamCutError

log = logging.getLogger(__name__)

HEARTBEAT = b": keepalive\n\n"


class Relay:
    """Iterates ``chunks``; ``close`` closes them and calls ``finish`` exactly once."""

    def __init__(self, chunks: Iterator[bytes], finish: Callable[[], None]) -> None:
        self._chunks = chunks
        self._finish: Callable[[], None] | None = finish

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
            finish()


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


def plain_body(chunks: Iterator[bytes], request_id: str) -> Iterator[bytes]:
    """Relay a non-SSE body; a cut is re-raised so the server drops the connection (the client sees it)."""
    try:
        yield from chunks
    except StreamCutError:
        log.warning("response cut by backend", extra={"request_id": request_id})
        raise
