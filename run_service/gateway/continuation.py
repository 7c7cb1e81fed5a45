"""Continuing a cut answer on another backend: the pure rules (what may be continued, the request, the rewrite).

When a VM is reclaimed mid-answer, the caller has received part of a generation. An OpenAI-compatible
engine can finish it from where it stopped: for chat, the original messages plus one assistant message
holding the text so far, with vLLM's ``continue_final_message: true`` and ``add_generation_prompt: false``;
for completions, the prompt followed by the text so far. The length limits shrink by the tokens already
relayed, everything else (sampling, tools, stop sequences) stays as the caller sent it. The continuation's
events are then rewritten into the first stream's identity: same ``id``, ``created`` and ``model``, no
second ``role`` delta, and a ``usage`` that counts the answer once.

Some requests cannot be continued faithfully, and get today's error event instead (``refusal``): ``n > 1``
(several answers interleave), log probabilities (the cut answer's are lost), ``echo``/``best_of``, structured
output (a grammar would restart at the continuation), a request that already continues its own final
message, and, found while relaying, a partial tool call or streamed reasoning (neither fits in the assistant
message the engine continues).

Token counting: each content-bearing chunk counts as one token, which is how vLLM streams (one delta per
decoding step). With speculative decoding a chunk can carry more, so the reduced ``max_tokens`` is then a
looser cap than the caller's, never a tighter one.

Nothing here does I/O; ``continued_stream`` drives these rules over real streams.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["chat", "text"]

_STRUCTURED = ("guided_json", "guided_regex", "guided_choice", "guided_grammar", "structured_outputs")


def kind_of(target: str) -> Kind | None:
    """The continuable endpoint a backend path names, if any."""
    path = target.split("?", 1)[0]
    if path.endswith("/chat/completions"):
        return "chat"
    if path.endswith("/completions"):
        return "text"
    return None


def refusal(kind: Kind, body: dict[str, Any]) -> str | None:
    """Why this request's stream could not be continued faithfully, or None if it can be."""
    fmt = body.get("response_format")
    rules = (
        (body.get("n") not in (None, 1), "it asks for several answers (n > 1)"),
        (
            body.get("logprobs") not in (None, False) or body.get("top_logprobs") not in (None, 0),
            "it asks for log probabilities",
        ),
        (body.get("echo") is True or body.get("best_of") not in (None, 1), "it uses echo or best_of"),
        (
            (isinstance(fmt, dict) and fmt.get("type") not in (None, "text")) or any(k in body for k in _STRUCTURED),
            "it asks for structured output",
        ),
        (
            kind == "chat"
            and (body.get("continue_final_message") is True or not isinstance(body.get("messages"), list)),
            "it already continues its own final message",
        ),
        (kind == "text" and not isinstance(body.get("prompt"), str), "its prompt is not a single string"),
    )
    return next((reason for broken, reason in rules if broken), None)


def continuable(target: str, body: dict[str, Any]) -> Kind | None:
    """The endpoint kind if a stream of ``body`` to ``target`` could be continued faithfully when cut, else None."""
    kind = kind_of(target)
    return kind if kind is not None and refusal(kind, body) is None else None


@dataclass(slots=True)
class Transcript:
    """What the caller has received so far, learned from the events relayed to it."""

    kind: Kind
    id: str | None = None
    created: int | None = None
    model: str | None = None
    text: list[str] = field(default_factory=list)
    tokens: int = 0
    finished: bool = False  # a finish_reason was relayed: the answer is complete, only [DONE] may be missing
    problem: str | None = None  # what makes a continuation unfaithful, found in the events themselves

    def observe(self, document: dict[str, Any]) -> None:
        """Take in one relayed event's JSON."""
        if self.id is None:
            self.id, self.created, self.model = document.get("id"), document.get("created"), document.get("model")
        for choice in document.get("choices") or []:
            self._observe_choice(choice if isinstance(choice, dict) else {})

    def _observe_choice(self, choice: dict[str, Any]) -> None:
        if choice.get("index", 0) != 0:
            self.problem = "the backend sent several answers"
        delta = choice.get("delta") if self.kind == "chat" else choice
        delta = delta if isinstance(delta, dict) else {}
        piece = delta.get("content") if self.kind == "chat" else delta.get("text")
        if isinstance(piece, str) and piece:
            self.text.append(piece)
            self.tokens += 1
        if delta.get("tool_calls") or delta.get("function_call"):
            self.problem = "it was cut inside a tool call"
        if delta.get("reasoning_content") or delta.get("reasoning"):
            self.problem = "it streamed reasoning, which the continued message cannot hold"
        if choice.get("finish_reason"):
            self.finished = True

    @property
    def so_far(self) -> str:
        return "".join(self.text)


def next_body(kind: Kind, original: dict[str, Any], seen: Transcript) -> dict[str, Any] | None:
    """The request that continues ``seen``; None when the length limit is already reached."""
    body = copy.deepcopy(original)
    for name in ("max_completion_tokens", "max_tokens"):
        if isinstance(body.get(name), int):
            body[name] -= seen.tokens
            if body[name] <= 0:
                return None
    if isinstance(body.get("min_tokens"), int):
        body["min_tokens"] = max(0, body["min_tokens"] - seen.tokens)
    if not seen.so_far:
        return body
    if kind == "chat":
        body["messages"] = [*body["messages"], {"role": "assistant", "content": seen.so_far}]
        body["continue_final_message"] = True
        body["add_generation_prompt"] = False
    else:
        body["prompt"] = body["prompt"] + seen.so_far
    return body


def rewrite(kind: Kind, document: dict[str, Any], first: Transcript, relayed_before: int) -> dict[str, Any] | None:
    """A continuation's event as the first stream's; None for events the caller must not see twice.

    ``relayed_before``: tokens the caller had received when this continuation was requested. They are part
    of the continuation's prompt, so its usage counts them as prompt tokens; the caller's usage counts them
    once, as completion tokens.
    """
    out = {**document, "id": first.id, "created": first.created, "model": first.model}
    choices = [_rewrite_choice(kind, c) for c in document.get("choices") or [] if isinstance(c, dict)]
    out["choices"] = [c for c in choices if c is not None]
    usage = document.get("usage")
    if isinstance(usage, dict):
        out["usage"] = _usage(usage, relayed_before)
    if not out["choices"] and not isinstance(usage, dict):
        return None
    return out


def _rewrite_choice(kind: Kind, choice: dict[str, Any]) -> dict[str, Any] | None:
    if kind == "chat":
        delta = {k: v for k, v in (choice.get("delta") or {}).items() if k != "role"}
        empty = not any(v not in (None, "", []) for v in delta.values())
        choice = {**choice, "delta": delta}
    else:
        empty = not choice.get("text")
    return None if empty and not choice.get("finish_reason") else choice


def _usage(usage: dict[str, Any], relayed_before: int) -> dict[str, Any]:
    prompt = max(0, int(usage.get("prompt_tokens") or 0) - relayed_before)
    completion = int(usage.get("completion_tokens") or 0) + relayed_before
    return {**usage, "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def length_finish(kind: Kind, first: Transcript) -> dict[str, Any]:
    """The final chunk for an answer cut exactly at its length limit: nothing is left to generate."""
    choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": "length"}
    if kind == "chat":
        choice["delta"] = {}
    else:
        choice["text"] = ""
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
    return {"id": first.id, "object": obj, "created": first.created, "model": first.model, "choices": [choice]}
