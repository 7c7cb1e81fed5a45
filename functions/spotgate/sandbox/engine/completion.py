"""What the fake engine says: deterministic text, token counts and the exact OpenAI response shapes.

Kept apart from the HTTP server so the shapes can be read (and tested) without a socket. Text is derived
from a hash of the prompt, so the same request always gets the same answer from every backend, which lets
tests compare answers across a failover. A "token" is one word here; that is all the pacing needs.

Continuation (what vLLM does with ``continue_final_message`` and with a completions prompt that ends in
generated text): the answer to a conversation is one fixed word sequence, word ``i`` a pure function of the
conversation before the answer and of ``i``; a request whose context already holds the first ``k`` words of
the answer gets words ``k``... So a continued answer equals the uncut answer token for token, which is what
the gateway's continuation relies on and what its tests prove.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
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
_TAIL = re.compile(r"(?: (?:" + "|".join(sorted(set(WORDS))) + r"))+$")
DEFAULT_MAX_TOKENS = 16
EMBEDDING_DIMENSIONS = 384

Kind = Literal["chat", "text"]


@dataclass(frozen=True, slots=True)
class Completion:
    """One answer: its words, why it ended, and the usage numbers OpenAI reports."""

    kind: Kind
    model: str
    pieces: tuple[str, ...]  # the text each token adds, leading space included
    finish_reason: str
    prompt_tokens: int
    id: str
    created: int

    @property
    def completion_tokens(self) -> int:
        return len(self.pieces)

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def usage(self) -> dict[str, int]:
        total = self.prompt_tokens + self.completion_tokens
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens, "total_tokens": total}


@dataclass(frozen=True, slots=True)
class Limits:
    """Length controls: OpenAI's ``max_tokens`` and vLLM's ``min_tokens``/``ignore_eos`` (for long streams)."""

    max_tokens: int = DEFAULT_MAX_TOKENS
    min_tokens: int = 0
    ignore_eos: bool = False


@dataclass(frozen=True, slots=True)
class Context:
    """What the engine generates after: the conversation before the answer and the answer words it already holds."""

    base: str
    answered: int = 0


def complete(kind: Kind, model: str, context: Context | str, limits: Limits, created: int) -> Completion:
    """The deterministic answer after ``context``: a length within ``limits``, counted from ``answered`` on.

    Lengths are absolute over the whole answer (``answered`` words plus the new ones), so a continuation sent
    with ``max_tokens``/``min_tokens`` reduced by ``answered`` ends exactly where the uncut answer ends.
    """
    if isinstance(context, str):
        context = Context(context)
    digest = _digest(context.base)
    done = context.answered
    natural = done + limits.max_tokens if limits.ignore_eos else max(8 + digest[0] % 40, done + limits.min_tokens)
    count = max(done, min(natural, done + limits.max_tokens))
    lead = kind == "text"  # completions text starts with a space, as tokenizers' word pieces do
    pieces = tuple(_piece(_word(digest, i), lead or i > 0) for i in range(done, count))
    prefix = "chatcmpl" if kind == "chat" else "cmpl"
    return Completion(
        kind=kind,
        model=model,
        pieces=pieces,
        finish_reason="length" if count < natural or limits.ignore_eos else "stop",
        prompt_tokens=count_tokens(context.base) + done,
        id=f"{prefix}-{uuid.uuid4().hex[:24]}",
        created=created,
    )


def answer_words(base: str, count: int) -> tuple[str, ...]:
    """The first ``count`` words of the answer to ``base`` (whatever its length limits)."""
    digest = _digest(base)
    return tuple(_word(digest, i) for i in range(count))


def text_context(prompt: str) -> Context:
    """A completions prompt read as a conversation: the longest tail that is the start of its own answer.

    A prompt ``P + " w0 w1 … w(k-1)"`` whose tail is the first ``k`` words of the answer to ``P`` continues
    that answer (vLLM simply generates after the prompt; the sandbox finds the same point). A prompt whose
    last words happen to start its own answer is, consistently, read the same way.
    """
    tail = _TAIL.search(prompt)
    words = tail.group(0).split(" ")[1:] if tail else []
    for k in range(len(words), 0, -1):
        cut = len(" " + " ".join(words[-k:]))
        base = prompt[: len(prompt) - cut]
        if _starts_answer(base, words[-k:]):
            return Context(base, k)
    return Context(prompt)


def chat_context(messages: list[Any], *, continue_final: bool) -> Context:
    """A chat conversation; with ``continue_final`` its last (assistant) message is the answer so far."""
    if not continue_final:
        return Context(chat_prompt(messages))
    final = chat_prompt(messages[-1:])
    return Context(chat_prompt(messages[:-1]), len(final.split()))


def _starts_answer(base: str, words: list[str]) -> bool:
    digest = _digest(base)
    return all(_word(digest, i) == word for i, word in enumerate(words))


def _digest(base: str) -> bytes:
    return hashlib.sha256(base.encode("utf-8")).digest()


def _word(digest: bytes, i: int) -> str:
    return WORDS[(digest[i % len(digest)] + i * 7) % len(WORDS)]


def _piece(word: str, space: bool) -> str:
    return " " + word if space else word


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


def response_body(c: Completion) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` or ``text_completion`` object."""
    if c.kind == "chat":
        message = {"role": "assistant", "content": c.text, "refusal": None}
        choice: dict[str, Any] = {"index": 0, "message": message, "logprobs": None, "finish_reason": c.finish_reason}
        obj = "chat.completion"
    else:
        choice = {"index": 0, "text": c.text, "logprobs": None, "finish_reason": c.finish_reason}
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
            delta = {"content": c.pieces[index]}
        choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None}
        obj = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": "" if final or index is None else c.pieces[index], "logprobs": None}
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
