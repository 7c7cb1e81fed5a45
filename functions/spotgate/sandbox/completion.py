"""What the fake engine says: deterministic text, token counts and the exact OpenAI response shapes.

Kept apart from the HTTP server so the shapes can be read (and tested) without a socket. Text is derived
from a hash of the prompt, so the same request always gets the same answer from every backend, which lets
tests compare answers across a failover. A "token" is one word here; that is all the pacing needs.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import uuid
from dataclasses import dataclass
from typing import Any, Literal

_TEXT = (
    "spot capacity returns quickly when the fleet waits calmly for a zone to free its GPUs while the gateway "
    "keeps every stream alive and the overflow service answers from a warm instance until a virtual machine "
    "boots again with its weights cached on disk so the model loads in seconds"
)
WORDS = tuple(_TEXT.split(" "))
DEFAULT_MAX_TOKENS = 16
EMBEDDING_DIMENSIONS = 384

Kind = Literal["chat", "text"]


@dataclass(frozen=True, slots=True)
class Completion:
    """One answer: its words, why it ended, and the usage numbers OpenAI reports."""

    kind: Kind
    model: str
    words: tuple[str, ...]
    finish_reason: str
    prompt_tokens: int
    id: str
    created: int

    @property
    def completion_tokens(self) -> int:
        return len(self.words)

    def usage(self) -> dict[str, int]:
        total = self.prompt_tokens + self.completion_tokens
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens, "total_tokens": total}


@dataclass(frozen=True, slots=True)
class Limits:
    """Length controls: OpenAI's ``max_tokens`` and vLLM's ``min_tokens``/``ignore_eos`` (for long streams)."""

    max_tokens: int = DEFAULT_MAX_TOKENS
    min_tokens: int = 0
    ignore_eos: bool = False


def complete(kind: Kind, model: str, prompt: str, limits: Limits, created: int) -> Completion:
    """The deterministic answer to ``prompt``: a prompt-dependent length within ``limits``."""
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    natural = limits.max_tokens if limits.ignore_eos else max(8 + digest[0] % 40, limits.min_tokens)
    count = min(natural, limits.max_tokens)
    words = tuple(WORDS[(digest[i % len(digest)] + i * 7) % len(WORDS)] for i in range(count))
    prefix = "chatcmpl" if kind == "chat" else "cmpl"
    return Completion(
        kind=kind,
        model=model,
        words=words,
        finish_reason="length" if count < natural or limits.ignore_eos else "stop",
        prompt_tokens=count_tokens(prompt),
        id=f"{prefix}-{uuid.uuid4().hex[:24]}",
        created=created,
    )


def count_tokens(text: str) -> int:
    return max(1, len(text.split()))


def chat_prompt(messages: list[Any]) -> str:
    """The text of a chat request, including multi-part content, as one string."""
    parts: list[str] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "\n".join(parts)


def text_of(words: tuple[str, ...]) -> str:
    return " ".join(words)


def response_body(c: Completion) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` or ``text_completion`` object."""
    if c.kind == "chat":
        message = {"role": "assistant", "content": text_of(c.words), "refusal": None}
        choice: dict[str, Any] = {"index": 0, "message": message, "logprobs": None, "finish_reason": c.finish_reason}
        obj = "chat.completion"
    else:
        choice = {"index": 0, "text": text_of(c.words), "logprobs": None, "finish_reason": c.finish_reason}
        obj = "text_completion"
    return {
        "id": c.id,
        "object": obj,
        "created": c.created,
        "model": c.model,
        "system_fingerprint": "spotgate-sandbox",
        "choices": [choice],
        "usage": c.usage(),
    }


def stream_chunk(c: Completion, index: int | None, *, final: bool = False, with_usage: bool = False) -> bytes:
    """One SSE event: the role chunk (``index`` None), word ``index``, or the final finish_reason chunk."""
    if c.kind == "chat":
        delta: dict[str, Any]
        if final:
            delta = {}
        elif index is None:
            delta = {"role": "assistant", "content": ""}
        else:
            delta = {"content": _piece(c.words, index)}
        choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None}
        obj = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": "" if final or index is None else _piece(c.words, index), "logprobs": None}
        obj = "text_completion"
    choice["finish_reason"] = c.finish_reason if final else None
    body: dict[str, Any] = {"id": c.id, "object": obj, "created": c.created, "model": c.model}
    body["system_fingerprint"] = "spotgate-sandbox"
    body["choices"] = [choice]
    if with_usage:
        body["usage"] = None
    return sse(body)


def usage_chunk(c: Completion) -> bytes:
    """The extra last chunk ``stream_options.include_usage`` asks for: no choices, the usage."""
    obj = "chat.completion.chunk" if c.kind == "chat" else "text_completion"
    body = {"id": c.id, "object": obj, "created": c.created, "model": c.model, "choices": [], "usage": c.usage()}
    body["system_fingerprint"] = "spotgate-sandbox"
    return sse(body)


def _piece(words: tuple[str, ...], index: int) -> str:
    return words[index] if index == 0 else " " + words[index]


def sse(body: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


def embed(text: str, dimensions: int) -> list[float]:
    """A unit vector derived from ``text``: equal texts embed equally, different texts differ."""
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        block = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend((v / 2**31) - 1.0 for v in struct.unpack(">8I", block))
        counter += 1
    vector = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [round(v / norm, 6) for v in vector]


def embeddings_body(model: str, inputs: list[str], dimensions: int) -> dict[str, Any]:
    data = [{"object": "embedding", "index": i, "embedding": embed(t, dimensions)} for i, t in enumerate(inputs)]
    tokens = sum(count_tokens(t) for t in inputs)
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def error_body(message: str, kind: str, param: str | None, code: str | None) -> dict[str, Any]:
    """OpenAI's error envelope."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
