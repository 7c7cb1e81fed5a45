"""Server-sent events as the gateway reads them: complete events out of arbitrary byte chunks.

A continued stream must never hand the caller half an event: if a backend dies mid-event, the bytes already
relayed would corrupt the continuation that follows. So a continuable stream is relayed event by event
(engines write one event per chunk, so this adds no wait), and its JSON ``data`` is read to learn what the
caller has received so far.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

DONE = "[DONE]"


@dataclass(frozen=True, slots=True)
class Event:
    """One SSE event: its raw bytes (terminator included) and its ``data`` field, if it has one."""

    raw: bytes
    data: str | None

    @property
    def done(self) -> bool:
        return self.data == DONE

    def json(self) -> dict[str, Any] | None:
        """The data as a JSON object, or None (no data, ``[DONE]``, or not a JSON object)."""
        if self.data is None or self.done:
            return None
        try:
            value = json.loads(self.data)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


def events(chunks: Iterator[bytes]) -> Iterator[Event]:
    """The events in ``chunks``, each whole; a last event the stream ended without its blank line is kept if
    it is whole (``[DONE]`` or a JSON document), and dropped if it was torn.

    Line ends are normalised to LF (SSE allows CRLF, which may be split across chunks).
    """
    pending = b""
    for chunk in chunks:
        pending = (pending + chunk).replace(b"\r\n", b"\n")
        while (end := pending.find(b"\n\n")) >= 0:
            raw, pending = pending[: end + 2], pending[end + 2 :]
            yield Event(raw, _data(raw))
    last = Event(pending.rstrip(b"\n") + b"\n\n", _data(pending))
    if last.done or last.json() is not None:  # complete but for its blank line; a torn event is dropped
        yield last


def encode(document: dict[str, Any]) -> bytes:
    """A ``data:`` event for a JSON document, compact as engines write it."""
    return b"data: " + json.dumps(document, separators=(",", ":")).encode() + b"\n\n"


def comment(text: str) -> bytes:
    """An SSE comment event (clients ignore it; curl users see it)."""
    return f": {text}\n\n".encode()


def _data(raw: bytes) -> str | None:
    lines = [line for line in raw.decode("utf-8", "replace").split("\n") if line.startswith("data:")]
    if not lines:
        return None
    return "\n".join(line[5:].removeprefix(" ") for line in lines)
