"""A VM killed mid-answer behind the gateway: the OpenAI SDK still gets the whole answer, as one stream.

Two sandbox engines serve pool ``chat``; the test kills whichever one answers after a few tokens (a SIGKILL:
the kernel resets the connection, as when GCE reclaims a SPOT VM). The sandbox engine's answers are a pure
function of the conversation, so the continued text must equal the text of an uncut run, token for token.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import openai
import pytest
import requests

from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.fleet import parse_fleet
from tests.gateway.stack import EngineProcess, RunningGateway, a_key, a_route, fleet_document, wait_until
from tests.sdk import sdk_client

MESSAGES: Any = [{"role": "user", "content": "tell me how spot capacity comes back"}]
SLOW = ("--tokens-per-second", "40")


def two_vms(store: SqliteStore, engines: Callable[..., EngineProcess]) -> dict[str, EngineProcess]:
    started = {name: engines("chat-model", name, *SLOW) for name in ("chat-a-1", "chat-b-1")}
    store.put_routes([a_route("chat", e.name, e.url) for e in started.values()])
    return started


def gateway_for(make_gateway: Callable[..., RunningGateway], *, continuation: bool = True) -> RunningGateway:
    document = fleet_document(wake_hold="2s")
    document["pools"][0]["continuation"] = continuation
    return make_gateway(parse_fleet(document))


def uncut(vm: EngineProcess, **extra: Any) -> tuple[str, str]:
    """The text and finish reason of the same request answered without a cut."""
    client = sdk_client(base_url=vm.url + "/v1", api_key="x", max_retries=0, timeout=20)
    answer = client.chat.completions.create(model="chat-model", messages=MESSAGES, **extra)
    return answer.choices[0].message.content or "", answer.choices[0].finish_reason


def stream_and_kill(gateway: RunningGateway, secret: str, vms: dict[str, EngineProcess], **extra: Any) -> list[Any]:
    """Stream through the SDK and kill the answering VM after its third chunk; the chunks received."""
    client = sdk_client(base_url=f"{gateway.url}/v1", api_key=secret, max_retries=0, timeout=30)
    raw = client.chat.completions.with_raw_response.create(model="chat-model", messages=MESSAGES, stream=True, **extra)
    answering = vms[raw.headers["x-spotgate-backend"]]
    received: list[Any] = []
    for chunk in raw.parse():
        received.append(chunk)
        if len(received) == 3:
            answering.kill()
    return received


def test_a_stream_whose_vm_dies_mid_answer_completes_with_the_uncut_text(store, engines, make_gateway) -> None:
    vms = two_vms(store, engines)
    secret, _ = a_key(store)
    options = {"max_tokens": 60, "extra_body": {"min_tokens": 60}, "stream_options": {"include_usage": True}}
    expected, finish = uncut(next(iter(vms.values())), max_tokens=60, extra_body={"min_tokens": 60})

    chunks = stream_and_kill(gateway_for(make_gateway), secret, vms, **options)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected
    assert len({(c.id, c.created, c.model) for c in chunks}) == 1
    assert [c.choices[0].delta.role for c in chunks if c.choices].count("assistant") == 1
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 60
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [finish]


def test_the_continued_stream_has_one_done_and_says_it_was_continued(store, engines, make_gateway, caplog) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    vms = two_vms(store, engines)
    secret, _ = a_key(store)
    gateway = gateway_for(make_gateway)
    body = {"model": "chat-model", "stream": True, "max_tokens": 40, "min_tokens": 40, "messages": MESSAGES}
    headers = {"Authorization": f"Bearer {secret}"}
    with requests.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers, stream=True, timeout=30) as r:
        lines = []
        for line in r.iter_lines(decode_unicode=True):
            lines += [line] if line else []
            if sum(1 for x in lines if x.startswith("data: {")) == 3 and len(lines) < 100:
                vms[r.headers["x-spotgate-backend"]].kill()
    assert lines.count("data: [DONE]") == 1
    assert lines[-1] == "data: [DONE]"
    assert ": spotgate-continued 1" in lines
    assert not any('"error"' in line for line in lines)
    assert wait_until(lambda: [getattr(r, "continued", None) for r in caplog.records if r.name == "gateway.access"])
    (access,) = [r for r in caplog.records if r.name == "gateway.access"]
    assert access.continued == 1  # type: ignore[attr-defined]


def test_with_continuation_off_a_cut_stream_ends_with_the_error_event(store, engines, make_gateway) -> None:
    vms = two_vms(store, engines)
    secret, _ = a_key(store)
    with pytest.raises(openai.APIError, match="interrupted"):
        stream_and_kill(gateway_for(make_gateway, continuation=False), secret, vms, max_tokens=60)


def test_a_request_that_cannot_be_continued_faithfully_gets_the_error_event(store, engines, make_gateway) -> None:
    vms = two_vms(store, engines)
    secret, _ = a_key(store)
    with pytest.raises(openai.APIError, match="interrupted"):
        stream_and_kill(gateway_for(make_gateway), secret, vms, max_tokens=60, logprobs=True)


def test_a_completions_stream_is_continued_from_prompt_and_text_so_far(store, engines, make_gateway) -> None:
    vms = two_vms(store, engines)
    secret, _ = a_key(store)
    prompt = "the gateway keeps every stream"
    direct = sdk_client(base_url=next(iter(vms.values())).url + "/v1", api_key="x", max_retries=0, timeout=20)
    expected = direct.completions.create(
        model="chat-model", prompt=prompt, max_tokens=50, extra_body={"min_tokens": 50}
    )
    client = sdk_client(base_url=f"{gateway_for(make_gateway).url}/v1", api_key=secret, max_retries=0, timeout=30)
    raw = client.completions.with_raw_response.create(
        model="chat-model", prompt=prompt, max_tokens=50, stream=True, extra_body={"min_tokens": 50}
    )
    received: list[Any] = []
    for chunk in raw.parse():
        received.append(chunk)
        if len(received) == 3:
            vms[raw.headers["x-spotgate-backend"]].kill()
    assert "".join(c.choices[0].text for c in received if c.choices) == expected.choices[0].text
    assert len({c.id for c in received}) == 1


def test_a_held_stream_is_continued_too(store, engines, make_gateway) -> None:
    """Engines slower to their first token than a heartbeat: the caller's 200 went out before any backend's.

    Only chat-a-1 is routed at first, so it answers; chat-b-1 joins the table mid-stream, then chat-a-1 dies.
    """
    first, second = (engines("chat-model", name, *SLOW, "--ttft", "0.5") for name in ("chat-a-1", "chat-b-1"))
    store.put_routes([a_route("chat", first.name, first.url)])
    secret, _ = a_key(store)
    expected, _ = uncut(second, max_tokens=40, extra_body={"min_tokens": 40})
    gateway = gateway_for(make_gateway)
    body = {"model": "chat-model", "stream": True, "max_tokens": 40, "min_tokens": 40, "messages": MESSAGES}
    headers = {"Authorization": f"Bearer {secret}"}
    with requests.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers, stream=True, timeout=30) as r:
        lines: list[str] = []
        for line in r.iter_lines(decode_unicode=True):
            lines += [line] if line else []
            if line.startswith("data: {") and sum(1 for x in lines if x.startswith("data: {")) == 3:
                store.put_routes([a_route("chat", e.name, e.url) for e in (first, second)])
                first.kill()
    chunks = [json.loads(x[6:]) for x in lines if x.startswith("data: {")]
    assert ": keepalive" in lines  # it was a held stream
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == expected
    assert ": spotgate-continued 1" in lines
    assert lines[-1] == "data: [DONE]"
