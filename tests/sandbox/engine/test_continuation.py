"""The fake engine continues a cut answer exactly where it was cut: continued text equals the uncut text.

Pure tables over ``completion`` (no socket), then the same property through the engine process and the
official OpenAI SDK, with vLLM's ``continue_final_message``/``add_generation_prompt`` switches.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from openai import OpenAI

from spotgate.sandbox.engine import completion
from spotgate.sandbox.engine.completion import Context, Limits
from spotgate.sandbox.engine.options import EngineOptions
from spotgate.sandbox.engine.process import EngineArgs, EngineLauncher, EngineProcess
from tests.sdk import sdk_client

MODEL = "llama-test"
QUESTION = [{"role": "user", "content": "why do spot VMs get preempted?"}]


def continued_limits(limits: Limits, relayed: int) -> Limits:
    """What the gateway sends for the rest: the length limits reduced by the tokens already relayed."""
    return Limits(limits.max_tokens - relayed, max(0, limits.min_tokens - relayed), limits.ignore_eos)


def chat_continuation(limits: Limits, cut: int) -> tuple[str, completion.Completion, completion.Completion]:
    uncut = completion.complete("chat", MODEL, completion.chat_context(QUESTION, continue_final=False), limits, 0)
    partial = "".join(uncut.pieces[:cut])
    messages = [*QUESTION, {"role": "assistant", "content": partial}]
    context = completion.chat_context(messages, continue_final=True)
    return partial, uncut, completion.complete("chat", MODEL, context, continued_limits(limits, cut), 0)


@pytest.mark.parametrize(
    ("limits", "cut"),
    [
        pytest.param(Limits(), 1, id="after-the-first-token"),
        pytest.param(Limits(), 5, id="mid-answer"),
        pytest.param(Limits(max_tokens=12), 11, id="one-token-left-to-max"),
        pytest.param(Limits(max_tokens=300, min_tokens=200), 150, id="min-tokens-still-binding"),
        pytest.param(Limits(max_tokens=300, min_tokens=20), 25, id="past-min-tokens"),
        pytest.param(Limits(max_tokens=500, ignore_eos=True), 250, id="ignore-eos"),
    ],
)
def test_a_continued_chat_answer_equals_the_uncut_answer(limits: Limits, cut: int) -> None:
    partial, uncut, rest = chat_continuation(limits, cut)
    assert cut < uncut.completion_tokens
    assert partial + rest.text == uncut.text
    assert rest.completion_tokens == uncut.completion_tokens - cut
    assert rest.finish_reason == uncut.finish_reason
    assert rest.prompt_tokens == uncut.prompt_tokens + cut  # the partial answer is prompt now


@pytest.mark.parametrize(
    ("prompt", "limits", "cut"),
    [
        pytest.param("once upon a time", Limits(), 3, id="plain-prompt"),
        pytest.param("tell me about the fleet", Limits(), 4, id="prompt-ending-in-engine-words"),
        pytest.param("q", Limits(max_tokens=400, ignore_eos=True), 399, id="long-answer"),
    ],
)
def test_a_completions_prompt_ending_in_its_answer_continues_that_answer(prompt: str, limits: Limits, cut: int) -> None:
    uncut = completion.complete("text", MODEL, completion.text_context(prompt), limits, 0)
    so_far = "".join(uncut.pieces[:cut])
    context = completion.text_context(prompt + so_far)
    rest = completion.complete("text", MODEL, context, continued_limits(limits, cut), 0)
    assert so_far + rest.text == uncut.text
    assert rest.finish_reason == uncut.finish_reason


def test_a_prompt_that_is_not_a_continuation_reads_as_a_fresh_question() -> None:
    assert completion.text_context("what is a spot VM") == Context("what is a spot VM")
    assert completion.chat_context(QUESTION, continue_final=False) == Context(QUESTION[0]["content"])


@pytest.fixture(scope="module")
def engine() -> Iterator[EngineProcess]:
    launcher = EngineLauncher()
    try:
        yield launcher.launch(EngineArgs("127.0.0.1", 0, EngineOptions(model=MODEL, tokens_per_second=2000.0)))
    finally:
        launcher.close()


def streamed_text(client: OpenAI, messages: list[dict[str, str]], max_tokens: int, **extra: object) -> str:
    chunks = client.chat.completions.create(
        model=MODEL,
        messages=messages,  # type: ignore[arg-type]
        max_tokens=max_tokens,
        stream=True,
        extra_body=extra or None,
    )
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_the_engine_continues_a_final_assistant_message_over_the_sdk(engine: EngineProcess) -> None:
    client = sdk_client(base_url=engine.url + "/v1", api_key="x", timeout=10, max_retries=0)
    uncut = streamed_text(client, QUESTION, 40)
    partial = " ".join(uncut.split(" ")[:4])
    messages = [*QUESTION, {"role": "assistant", "content": partial}]
    rest = streamed_text(client, messages, 36, continue_final_message=True, add_generation_prompt=False)
    assert partial + rest == uncut


def test_the_engine_refuses_both_template_switches_like_vllm(engine: EngineProcess) -> None:
    client = sdk_client(base_url=engine.url + "/v1", api_key="x", timeout=10, max_retries=0)
    with pytest.raises(openai.BadRequestError, match="continue_final_message"):
        client.chat.completions.create(
            model=MODEL,
            messages=QUESTION,
            extra_body={"continue_final_message": True},  # type: ignore[arg-type]
        )
