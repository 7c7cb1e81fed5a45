"""A caller who did not ask for stream usage gets the stream the engine sends without ``include_usage``.

The gateway asks every engine for usage (per-key accounting). OpenAI (and the sandbox engine, which copies
it) then adds ``"usage": null`` to every chunk and a final usage-only chunk; vLLM adds only the final chunk.
Both must be taken out again, by a byte-level edit that leaves every other byte of the event alone.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from gateway.relay import without_usage
from tests.gateway.stack import a_key, a_route

_VLLM_CHUNK = (
    b'data: {"id":"chatcmpl-9b1","object":"chat.completion.chunk","created":1718000000,"model":"m",'
    b'"choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}]}\n\n'
)
_VLLM_USAGE = (
    b'data: {"id":"chatcmpl-9b1","object":"chat.completion.chunk","created":1718000000,"model":"m",'
    b'"choices":[],"usage":{"prompt_tokens":9,"total_tokens":12,"completion_tokens":3}}\n\n'
)
_OPENAI_HEAD = (
    b'data: {"id":"chatcmpl-C1x","object":"chat.completion.chunk","created":1754000000,"model":"gpt-4.1",'
    b'"service_tier":"default","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"Hi"},'
    b'"logprobs":null,"finish_reason":null}]'
)
_COMPLETION_HEAD = (
    b'data: {"id":"cmpl-1","object":"text_completion","created":1718000000,"model":"m",'
    b'"choices":[{"index":0,"text":" the","logprobs":null,"finish_reason":null}]'
)


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        pytest.param([_VLLM_CHUNK], _VLLM_CHUNK, id="vllm-chunk-untouched"),
        pytest.param(
            [_VLLM_CHUNK, _VLLM_USAGE, b"data: [DONE]\n\n"],
            _VLLM_CHUNK + b"data: [DONE]\n\n",
            id="vllm-usage-event-dropped",
        ),
        pytest.param([_OPENAI_HEAD + b',"usage":null}\n\n'], _OPENAI_HEAD + b"}\n\n", id="openai-null-last"),
        pytest.param(
            [_OPENAI_HEAD + b',"usage":null,"obfuscation":"Xq9"}\n\n'],
            _OPENAI_HEAD + b',"obfuscation":"Xq9"}\n\n',
            id="openai-null-before-obfuscation",
        ),
        pytest.param(
            [
                b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12},'
                b'"obfuscation":"k"}\n\n'
            ],
            b"",
            id="openai-usage-event-dropped",
        ),
        pytest.param([_COMPLETION_HEAD + b',"usage":null}\n\n'], _COMPLETION_HEAD + b"}\n\n", id="completions"),
        pytest.param(
            [b'data: {"id": "c", "choices": [], "usage": null}\n\n'],
            b'data: {"id": "c", "choices": []}\n\n',
            id="spaced-json-null",
        ),
        pytest.param(
            [b'data: {"id": "c", "choices": [], "usage": {"prompt_tokens": 1}}\n\n'], b"", id="spaced-json-usage-event"
        ),
        pytest.param([b'data: { "usage" : null , "id":"c"}\n\n'], b'data: {"id":"c"}\n\n', id="null-first"),
        pytest.param([b'data: {"usage":null}\n\n'], b"data: {}\n\n", id="null-only-member"),
        pytest.param(
            [b'data: {"choices":[{"delta":{"content":"say \\"usage\\":null, \\"usage\\": null}"}}],"usage":null}\n\n'],
            b'data: {"choices":[{"delta":{"content":"say \\"usage\\":null, \\"usage\\": null}"}}]}\n\n',
            id="text-that-looks-like-usage-kept",
        ),
        pytest.param(
            [b'data: {"choices":[{"delta":{"content":"a\\\\"}}],"usage":null}\n\n'],
            b'data: {"choices":[{"delta":{"content":"a\\\\"}}]}\n\n',
            id="text-ending-in-a-backslash",
        ),
        pytest.param(
            [b'data: {"choices":[{"delta":{"content":"usage"}}],"usage":null}\n\n'],
            b'data: {"choices":[{"delta":{"content":"usage"}}]}\n\n',
            id="word-usage-in-text",
        ),
        pytest.param(
            [_OPENAI_HEAD[:40], _OPENAI_HEAD[40:] + b',"us', b'age":null}\n\n'],
            _OPENAI_HEAD + b"}\n\n",
            id="event-split-across-reads",
        ),
        pytest.param([_OPENAI_HEAD + b',"usage":null}\r\n\r\n'], _OPENAI_HEAD + b"}\n\n", id="crlf"),
        pytest.param([b": keepalive\n\n", b"data: [DONE]\n\n"], b": keepalive\n\ndata: [DONE]\n\n", id="comment-done"),
    ],
)
def test_the_usage_the_gateway_asked_for_is_edited_out_of_the_callers_stream(
    stream: list[bytes], expected: bytes
) -> None:
    out = b"".join(without_usage(iter(stream)))
    assert out == expected
    for event in filter(None, out.split(b"\n\n")):  # every edited event is still the same JSON minus usage
        data = event.removeprefix(b"data: ")
        if data.startswith(b"{"):
            assert "usage" not in json.loads(data)


def test_a_stream_through_the_gateway_has_the_shape_of_one_without_include_usage(store, engines, make_gateway) -> None:
    """The sandbox engine writes OpenAI's shape: ``"usage": null`` in each chunk when usage is asked for."""
    engine = engines("chat-model", "chat-a")
    store.put_routes([a_route("chat", engine.name, engine.url)])
    secret, _ = a_key(store)
    payload: dict[str, Any] = {
        "model": "chat-model",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 3,
        "stream": True,
    }

    def documents(url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
        with requests.post(f"{url}/v1/chat/completions", json=payload, headers=headers, timeout=20) as r:
            lines = [line for line in r.iter_lines(decode_unicode=True) if line.startswith("data: {")]
        return [json.loads(line.removeprefix("data: ")) for line in lines]

    direct = documents(engine.url, {})
    relayed = documents(make_gateway().url, {"Authorization": f"Bearer {secret}"})
    assert [sorted(d) for d in relayed] == [sorted(d) for d in direct]
    assert all("usage" not in d for d in relayed)
