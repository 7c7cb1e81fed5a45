"""Bounded JSON parsing: element count before the parse, depth after it, strings never miscounted."""

from __future__ import annotations

import json

import pytest

from gateway.errors import ApiError
from gateway.payload import parse_object

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
