"""Bounded JSON parsing: element count before the parse, depth after it, strings never miscounted."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from gateway.errors import ApiError
from gateway.payload import parse_object, parsed_size

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def parse(body: bytes) -> object:
    return parse_object(body, max_depth=8, max_elements=100)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param(b'{"model":"m","x":[' + b"{}," * 200 + b"{}]}", "json_too_large", id="many-empty-objects"),
        pytest.param(b'{"x":[' + b"1," * 200 + b"1]}", "json_too_large", id="many-numbers"),
        pytest.param(b'{"x":' + b"[" * 9 + b"]" * 9 + b"}", "json_too_deep", id="deep-arrays"),
        pytest.param(b'{"x":' + b"[" * 50_000 + b"]" * 50_000 + b"}", "json_too_large", id="deeper-than-python"),
        pytest.param(b"[1]", "invalid_json", id="not-an-object"),
        pytest.param(b'{"x":', "invalid_json", id="truncated"),
        pytest.param(b"\xff", "invalid_json", id="not-utf8"),
    ],
)
def test_bodies_past_a_bound_are_refused_with_400(body: bytes, code: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse(body)
    assert (refused.value.status, refused.value.code) == (400, code)


def test_recursion_past_the_interpreter_limit_is_a_400() -> None:
    body = b'{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(ApiError) as refused:
        parse_object(body, max_depth=8, max_elements=10**6)
    assert refused.value.code == "json_too_deep"


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(CHAT, id="plain-chat"),
        pytest.param({**CHAT, "note": "{[,]}" * 500}, id="brackets-inside-strings-are-not-elements"),
        pytest.param({**CHAT, "note": '\\"{,' * 300}, id="escaped-quotes-in-strings"),
        pytest.param({"a": [[[[[[1]]]]]]}, id="depth-within-bound"),
    ],
)
def test_bodies_within_bounds_parse(payload: dict[str, object]) -> None:
    assert parse(json.dumps(payload).encode()) == payload


def _repeated(unit: bytes, count: int = 20_000) -> bytes:
    """``{"x":[unit unit …]}`` with ``%d`` in ``unit`` replaced by the item's number (unique keys, strings)."""
    items = (unit.replace(b"%d", str(i).encode()) for i in range(count))
    return b'{"x":[' + b"".join(items) + b"1]}"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_repeated(b"{},"), id="empty-objects"),
        pytest.param(_repeated(b'{"a":1},'), id="one-member-objects"),
        pytest.param(_repeated(b'{"k%d":1},'), id="one-member-objects-unique-keys"),
        pytest.param(_repeated(b'{"k%d":1,"j%d":2},'), id="two-member-objects-unique-keys"),
        pytest.param(_repeated(b'{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6},'), id="six-member-objects"),
        pytest.param(_repeated(b'{"a":{"b":{}}},'), id="nested-objects"),
        pytest.param(_repeated(b"[1],"), id="one-item-lists"),
        pytest.param(_repeated(b"[[]],"), id="nested-lists"),
        pytest.param(_repeated(b"1000,"), id="ints"),
        pytest.param(_repeated(b"1.5,"), id="floats"),
        pytest.param(_repeated(b'"ab",'), id="short-strings"),
        pytest.param(_repeated(b'"%d",'), id="unique-strings"),
    ],
)
def test_parsed_size_bounds_what_parsing_takes(body: bytes) -> None:
    """What the worker's body budget is charged before a parse is at least what the parse allocates."""
    tracemalloc.start()
    try:
        parsed = json.loads(body)
        taken, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert parsed
    assert taken <= parsed_size(body) + len(body)  # the strings' own bytes are at most the body's


def test_the_parsed_size_is_reserved_before_parsing_and_a_refusal_stops_it() -> None:
    body = _repeated(b'{"a":1},', 100)
    reserved: list[int] = []
    parse_object(body, max_depth=8, max_elements=10**6, reserve=reserved.append)
    assert reserved == [parsed_size(body)]

    def refuse(size: int) -> None:
        raise ApiError(503, "busy", code="busy")

    with pytest.raises(ApiError) as refused:
        parse_object(b"{not json", max_depth=8, max_elements=10**6, reserve=refuse)
    assert refused.value.code == "busy"  # refused before the parser ran (it would have said invalid_json)
