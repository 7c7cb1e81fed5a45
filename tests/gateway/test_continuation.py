"""Continuation rules, pure: what may be continued, the continuing request, the rewritten events, the relay.

The relay (``continued_stream``) runs here over scripted byte streams and a scripted ``reopen``, so every
branch (cut, EOF without [DONE], cut at the length limit, refusals, no backend) is a table row without
sockets. The real thing, engines killed mid-answer behind the gateway, is in test_continued_streams.py.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from gateway import sse
from gateway.continuation import Transcript, kind_of, next_body, refusal, rewrite
from gateway.continued_stream import continued_stream
from gateway.errors import ApiError, stream_interrupted
from gateway.upstream import StreamCutError

CHAT = {"model": "m", "stream": True, "max_tokens": 10, "messages": [{"role": "user", "content": "q"}]}
TEXT = {"model": "m", "stream": True, "max_tokens": 10, "prompt": "once"}


def chunk(cid: str, *, role: bool = False, content: str | None = None, finish: str | None = None) -> dict[str, Any]:
    delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
    if content is not None:
        delta["content"] = content
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {"id": cid, "object": "chat.completion.chunk", "created": 7 if cid == "A" else 99, "model": cid.lower(),
            "choices": [choice]}  # fmt: skip


def usage(cid: str, prompt: int, completion: int) -> dict[str, Any]:
    numbers = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    return {"id": cid, "object": "chat.completion.chunk", "created": 99, "model": "b", "choices": [], "usage": numbers}


def wire(*documents: dict[str, Any], done: bool = True, cut: bool = False) -> Iterator[bytes]:
    for document in documents:
        raw = sse.encode(document)
        yield raw[:9]  # events arrive split across chunks
        yield raw[9:]
    if done:
        yield b"data: [DONE]\n\n"
    if cut:
        raise StreamCutError("connection reset by peer")


@pytest.mark.parametrize(
    ("kind", "body", "reason"),
    [
        pytest.param("chat", CHAT, None, id="plain-chat"),
        pytest.param("text", TEXT, None, id="plain-completion"),
        pytest.param("chat", {**CHAT, "n": 2}, "several answers", id="n-2"),
        pytest.param("chat", {**CHAT, "logprobs": True}, "log probabilities", id="chat-logprobs"),
        pytest.param("text", {**TEXT, "logprobs": 2}, "log probabilities", id="completion-logprobs"),
        pytest.param("text", {**TEXT, "echo": True}, "echo", id="echo"),
        pytest.param("chat", {**CHAT, "response_format": {"type": "json_object"}}, "structured", id="json-mode"),
        pytest.param("chat", {**CHAT, "guided_json": {}}, "structured", id="vllm-guided"),
        pytest.param("chat", {**CHAT, "continue_final_message": True}, "already continues", id="own-continuation"),
        pytest.param("text", {**TEXT, "prompt": ["a", "b"]}, "single string", id="batched-prompt"),
    ],
)
def test_what_can_be_continued(kind: Any, body: dict[str, Any], reason: str | None) -> None:
    found = refusal(kind, body)
    assert (found is None) if reason is None else (reason in (found or ""))


def a_transcript(kind: Any, *pieces: str) -> Transcript:
    seen = Transcript(kind)
    for piece in pieces:
        seen.observe({"id": "A", "choices": [{"index": 0, "delta": {"content": piece}, "text": piece}]})
    return seen


@pytest.mark.parametrize(
    ("kind", "body", "pieces", "expected"),
    [
        pytest.param(
            "chat", CHAT, ("Hi", " there"),
            {**CHAT, "max_tokens": 8, "continue_final_message": True, "add_generation_prompt": False,
             "messages": [*CHAT["messages"], {"role": "assistant", "content": "Hi there"}]},
            id="chat-appends-the-partial-answer",
        ),
        pytest.param(
            "chat", {**CHAT, "max_tokens": None, "max_completion_tokens": 5, "min_tokens": 3}, ("a", " b", " c", " d"),
            {**CHAT, "max_tokens": None, "max_completion_tokens": 1, "min_tokens": 0, "continue_final_message": True,
             "add_generation_prompt": False,
             "messages": [*CHAT["messages"], {"role": "assistant", "content": "a b c d"}]},
            id="chat-length-limits-shrink",
        ),
        pytest.param(
            "text", TEXT, (" upon", " a"), {**TEXT, "max_tokens": 8, "prompt": "once upon a"}, id="completion"
        ),
        pytest.param("chat", CHAT, (), CHAT, id="nothing-relayed-is-the-original"),
        pytest.param("chat", {**CHAT, "max_tokens": 2}, ("a", " b"), None, id="length-limit-reached"),
    ],
)  # fmt: skip
def test_the_continuing_request(kind: Any, body: dict[str, Any], pieces: tuple[str, ...], expected: Any) -> None:
    assert next_body(kind, body, a_transcript(kind, *pieces)) == expected


def test_a_continuation_event_takes_the_first_streams_identity_and_counts_usage_once() -> None:
    first = Transcript("chat")
    first.observe(chunk("A", role=True))
    assert rewrite("chat", chunk("B", role=True), first, 3) is None  # no second role delta
    assert rewrite("chat", chunk("B", content=" x"), first, 3) == chunk("A", content=" x")
    rewritten = rewrite("chat", usage("B", 12, 5), first, 3)
    assert rewritten is not None
    assert (rewritten["id"], rewritten["created"], rewritten["model"]) == ("A", 7, "a")
    assert rewritten["usage"] == {"prompt_tokens": 9, "completion_tokens": 8, "total_tokens": 17}


def scripted_reopen(*streams: Iterator[bytes] | ApiError) -> tuple[list[dict[str, Any]], Any]:
    asked: list[dict[str, Any]] = []
    queue = list(streams)

    def reopen(body: bytes) -> Generator[bytes, None, Iterator[bytes] | ApiError]:
        asked.append(json.loads(body))
        yield b": keepalive\n\n"
        return queue.pop(0)

    return asked, reopen


def relay(first: Iterator[bytes], reopen: Any, body: dict[str, Any] = CHAT) -> tuple[list[bytes], int]:
    cuts: list[int] = []
    original = lambda: json.loads(json.dumps(body))  # noqa: E731 - the call's raw bytes, parsed at a cut
    out = list(continued_stream(first, "chat", original, reopen, request_id="r1", on_cut=lambda: cuts.append(1)))
    return out, len(cuts)


def data_of(out: list[bytes]) -> list[Any]:
    return [e.json() or e.data for e in sse.events(iter(out)) if e.data is not None]


def test_a_cut_stream_continues_as_one_stream_with_one_done() -> None:
    first = wire(chunk("A", role=True), chunk("A", content="Hi"), chunk("A", content=" there"), done=False, cut=True)
    rest = wire(chunk("B", role=True), chunk("B", content=" you"), chunk("B", finish="stop"), usage("B", 4, 1))
    asked, reopen = scripted_reopen(rest)
    out, cuts = relay(first, reopen, {**CHAT, "stream_options": {"include_usage": True}})
    data = data_of(out)
    assert asked[0]["messages"][-1] == {"role": "assistant", "content": "Hi there"}
    assert cuts == 1
    assert data[-1] == "[DONE]"
    assert data.count("[DONE]") == 1
    assert {d["id"] for d in data if isinstance(d, dict)} == {"A"}
    assert [d["choices"][0]["delta"].get("role") for d in data if isinstance(d, dict) and d["choices"]].count(
        "assistant"
    ) == 1
    assert data[-2]["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    assert b": spotgate-continued 1\n\n" in out
    assert b": keepalive\n\n" in out  # the wait for a backend kept the caller's connection alive


@pytest.mark.parametrize(
    ("first", "reopened", "expected_end"),
    [
        pytest.param(
            wire(chunk("A", content="Hi"), done=False), [wire(chunk("B", finish="stop"))], "[DONE]",
            id="eof-without-done-is-a-cut",
        ),
        pytest.param(
            wire(chunk("A", content="Hi"), chunk("A", finish="stop"), done=False, cut=True), [], "[DONE]",
            id="cut-after-the-finish-only-needs-done",
        ),
        pytest.param(
            wire(chunk("A", content="Hi"), done=False, cut=True), [stream_interrupted("no other backend")], "error",
            id="no-backend-for-the-rest-is-the-error-event",
        ),
        pytest.param(
            wire({"id": "A", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0}]}}]}, done=False, cut=True),
            [], "error", id="partial-tool-call-is-refused",
        ),
        pytest.param(
            wire(chunk("A", content="a"), done=False, cut=True),
            [wire(chunk("B", content=" b"), done=False, cut=True) for _ in range(3)], "error",
            id="continued-too-often",
        ),
    ],
)  # fmt: skip
def test_how_a_cut_stream_ends(first: Iterator[bytes], reopened: list[Any], expected_end: str) -> None:
    _, reopen = scripted_reopen(*reopened)
    data = data_of(relay(first, reopen)[0])
    end = "[DONE]" if data[-1] == "[DONE]" else "error" if "error" in data[-1] else data[-1]
    assert end == expected_end
    assert data.count("[DONE]") <= 1


def test_a_stream_cut_exactly_at_its_length_limit_gets_its_finish_without_a_backend() -> None:
    first = wire(chunk("A", content="a"), chunk("A", content=" b"), done=False, cut=True)
    asked, reopen = scripted_reopen()
    data = data_of(relay(first, reopen, {**CHAT, "max_tokens": 2})[0])
    assert asked == []
    assert data[-2]["choices"][0]["finish_reason"] == "length"
    assert data[-1] == "[DONE]"


def test_an_uncut_stream_passes_through_byte_for_byte() -> None:
    original = b"".join(wire(chunk("A", role=True), chunk("A", content="Hi"), chunk("A", finish="stop")))
    out, cuts = relay(iter([original]), scripted_reopen()[1])
    assert b"".join(out) == original
    assert cuts == 0


def test_an_uncut_stream_never_parses_its_request() -> None:
    """The request is parsed only at a cut: an open stream holds its raw bytes, not a parsed copy."""

    def original() -> dict[str, Any]:
        raise AssertionError("parsed without a cut")

    first = wire(chunk("A", role=True), chunk("A", content="Hi"), chunk("A", finish="stop"))
    out = list(continued_stream(first, "chat", original, scripted_reopen()[1], request_id="r1", on_cut=lambda: None))
    assert data_of(out)[-1] == "[DONE]"


def test_sse_events_are_whole_whatever_the_chunking() -> None:
    raw = b'data: {"a":1}\r\n\r\n: comment\n\ndata: [DONE]\n\n'
    for size in (1, 3, len(raw)):
        found = list(sse.events(iter([raw[i : i + size] for i in range(0, len(raw), size)])))
        assert [e.data for e in found] == ['{"a":1}', None, "[DONE]"]
        assert json.loads(found[0].data or "") == {"a": 1}


def test_a_stream_that_ends_without_its_last_blank_line_still_has_its_done() -> None:
    original = b"".join(wire(chunk("A", content="Hi"), chunk("A", finish="stop"), done=False)) + b"data: [DONE]\n"
    out, cuts = relay(iter([original]), scripted_reopen()[1])
    assert data_of(out)[-1] == "[DONE]"
    assert cuts == 0  # not mistaken for a cut (a continuation would repeat the answer)


def test_a_torn_last_event_never_reaches_the_caller() -> None:
    torn = b"".join(wire(chunk("A", content="Hi"), done=False)) + b'data: {"id":"A","cho'
    _, reopen = scripted_reopen(wire(chunk("B", content=" there"), chunk("B", finish="stop")))
    out, cuts = relay(iter([torn]), reopen)
    assert b'"cho' not in b"".join(out).replace(b'"choices"', b"")
    assert cuts == 1


@pytest.mark.parametrize(
    ("target", "kind"),
    [
        pytest.param("/v1/chat/completions", "chat", id="chat"),
        pytest.param("/v1/completions", "text", id="completions"),
        pytest.param("/v1/embeddings", None, id="embeddings"),
    ],
)
def test_which_endpoints_continue(target: str, kind: str | None) -> None:
    assert kind_of(target) == kind
