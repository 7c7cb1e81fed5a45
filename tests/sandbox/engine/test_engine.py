"""The fake engine answers the official OpenAI SDK like a real OpenAI-compatible server would."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest
import requests
from openai import OpenAI

from spotgate.sandbox.engine.options import EngineOptions, parse_args
from spotgate.sandbox.engine.process import EngineArgs, EngineLauncher, EngineProcess
from spotgate.sandbox.metadata.identity import Identity
from tests.sdk import sdk_client

MODEL = "llama-test"
AUDIENCE = "https://chat-overflow.example.run.app"
INVOKER = "gateway@proj.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def launcher() -> Iterator[EngineLauncher]:
    launcher = EngineLauncher()
    try:
        yield launcher
    finally:
        launcher.close()


def an_engine(launcher: EngineLauncher, **overrides: object) -> EngineProcess:
    fields: dict[str, object] = {"model": MODEL, "name": "backend-a"}
    return launcher.launch(EngineArgs("127.0.0.1", 0, EngineOptions(**{**fields, **overrides})))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def engine(launcher: EngineLauncher) -> EngineProcess:
    return an_engine(launcher, aliases=("alias-model",), tokens_per_second=500.0)


def client_for(engine: EngineProcess, api_key: str = "x") -> OpenAI:
    return sdk_client(base_url=engine.url + "/v1", api_key=api_key, timeout=10, max_retries=0)


def test_chat_completion_is_deterministic_and_names_its_backend(engine: EngineProcess) -> None:
    client = client_for(engine)
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hello there"}]
    )
    first = raw.parse()
    again = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hello there"}])
    assert raw.headers["x-spotgate-backend"] == "backend-a"
    assert first.choices[0].message.content
    assert first.choices[0].message.content == again.choices[0].message.content
    assert first.usage is not None
    assert first.usage.completion_tokens <= 16  # the default max_tokens


def test_stream_matches_the_non_streamed_answer_and_reports_usage(engine: EngineProcess) -> None:
    client = client_for(engine)
    messages = [{"role": "user", "content": "tell me about spot capacity"}]
    whole = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=30)  # type: ignore[arg-type]
    stream = client.chat.completions.create(
        model=MODEL,
        messages=messages,  # type: ignore[arg-type]
        max_tokens=30,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]


def test_max_tokens_cuts_the_answer(engine: EngineProcess) -> None:
    answer = client_for(engine).chat.completions.create(
        model="alias-model", messages=[{"role": "user", "content": "a long question"}], max_tokens=2
    )
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 2
    assert answer.choices[0].finish_reason == "length"


def test_text_completions_and_embeddings(engine: EngineProcess) -> None:
    client = client_for(engine)
    text = client.completions.create(model=MODEL, prompt="once upon a time", max_tokens=5)
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(model=MODEL, prompt="once upon a time", max_tokens=5, stream=True)
        if c.choices
    )
    vectors = client.embeddings.create(model=MODEL, input=["alpha", "beta", "alpha"])
    assert text.choices[0].text == streamed
    assert [len(d.embedding) for d in vectors.data] == [384, 384, 384]
    assert vectors.data[0].embedding == vectors.data[2].embedding != vectors.data[1].embedding
    assert [m.id for m in client.models.list()] == [MODEL, "alias-model"]


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        pytest.param(b"{not json", 400, None, id="invalid-json"),
        pytest.param(b"[1, 2]", 400, None, id="not-an-object"),
        pytest.param(json.dumps({"model": MODEL}).encode(), 400, "messages", id="missing-messages"),
        pytest.param(
            json.dumps({"model": "nope", "messages": [{"role": "user", "content": "x"}]}).encode(),
            404,
            "model",
            id="unknown-model",
        ),
        pytest.param(
            json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}).encode(),
            400,
            "max_tokens",
            id="bad-max-tokens",
        ),
    ],
)
def test_bad_requests_get_openai_shaped_errors(
    engine: EngineProcess, body: bytes, status: int, param: str | None
) -> None:
    response = requests.post(engine.url + "/v1/chat/completions", data=body, timeout=5)
    error = response.json()["error"]
    assert response.status_code == status
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    assert response.headers["x-spotgate-backend"] == "backend-a"


def test_health_path_is_503_while_the_model_loads_then_200(launcher: EngineLauncher) -> None:
    engine = an_engine(launcher, load_delay=1.5, health_path="/ready")
    seen = [requests.get(engine.url + "/ready", timeout=5).status_code]
    for _ in range(60):
        if seen[-1] == 200:
            break
        time.sleep(0.1)
        seen.append(requests.get(engine.url + "/ready", timeout=5).status_code)
    assert seen[0] == 503
    assert seen[-1] == 200
    assert requests.get(engine.url + "/health", timeout=5).status_code == 404  # the pool chose /ready


class _Certs:
    """A loopback server for an Identity's certs, like Google's oauth2/v1/certs."""

    def __init__(self, identity: Identity) -> None:
        payload = json.dumps(identity.certs_json()).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/oauth2/v1/certs"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def identity() -> Identity:
    return Identity.generate()


@pytest.fixture(scope="module")
def iam_engine(launcher: EngineLauncher, identity: Identity) -> Iterator[EngineProcess]:
    certs = _Certs(identity)
    try:
        yield an_engine(launcher, audience=AUDIENCE, certs_url=certs.url, invokers=(INVOKER,))
    finally:
        certs.close()


@pytest.mark.parametrize(
    ("token_of", "status"),
    [
        pytest.param(lambda me: me.sign_id_token(AUDIENCE, INVOKER), 200, id="valid"),
        pytest.param(lambda me: "", 401, id="missing"),
        pytest.param(lambda me: Identity.generate().sign_id_token(AUDIENCE, INVOKER), 401, id="foreign-key"),
        pytest.param(lambda me: me.sign_id_token("https://other.example", INVOKER), 401, id="wrong-audience"),
        pytest.param(lambda me: me.sign_id_token(AUDIENCE, "intruder@example.com"), 403, id="not-an-invoker"),
    ],
)
def test_iam_checks_the_id_token_like_cloud_run(
    iam_engine: EngineProcess, identity: Identity, token_of: object, status: int
) -> None:
    token = token_of(identity)  # type: ignore[operator]
    headers = {"authorization": f"Bearer {token}"} if token else {}
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    response = requests.post(iam_engine.url + "/v1/chat/completions", json=body, headers=headers, timeout=10)
    assert response.status_code == status
    if status != 200:
        assert response.json()["error"]["type"] in {"authentication_error", "permission_error"}


def scaling(engine: EngineProcess, min_instances: int | None = None) -> dict[str, object]:
    if min_instances is None:
        return requests.get(engine.url + "/_sandbox/scaling", timeout=5).json()  # type: ignore[no-any-return]
    body = {"min_instances": min_instances}
    return requests.post(engine.url + "/_sandbox/scaling", json=body, timeout=5).json()  # type: ignore[no-any-return]


def test_scaled_to_zero_service_cold_starts_unless_min_instances_keeps_it_warm(launcher: EngineLauncher) -> None:
    engine = an_engine(launcher, cold_start=0.3, scale_down_after=30.0)
    at_zero = scaling(engine)
    pinned = scaling(engine, 1)
    released = scaling(engine, 0)
    answer = client_for(engine).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert at_zero == {"min_instances": 0, "warm": False}
    assert pinned == {"min_instances": 1, "warm": True}
    assert released == {"min_instances": 0, "warm": False}  # never used: back to zero
    assert answer.choices[0].message.content  # served after the cold start
    assert scaling(engine)["warm"] is True  # and warm while recently used


def test_killed_engine_cuts_an_open_stream(launcher: EngineLauncher) -> None:
    engine = an_engine(launcher, tokens_per_second=5.0)
    stream = client_for(engine).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "x"}], max_tokens=200, stream=True
    )
    next(iter(stream))
    engine.kill()
    with pytest.raises(openai.APIConnectionError):
        list(stream)
    assert engine not in launcher.children()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param({"ignore_eos": True}, 120, id="ignore-eos-fills-max-tokens"),
        pytest.param({"min_tokens": 100}, 100, id="min-tokens-lengthens"),
    ],
)
def test_vllm_length_controls_make_long_answers(engine: EngineProcess, extra: dict[str, object], expected: int) -> None:
    answer = client_for(engine).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "q"}], max_tokens=120, extra_body=extra
    )
    assert answer.usage is not None
    assert answer.usage.completion_tokens == expected


def test_command_line_takes_several_invokers_and_aliases_per_flag() -> None:
    _, _, options = parse_args(
        ["--port", "0", "--model", "m", "--alias", "a", "b", "--invoker", "x@p.iam", "y@p.iam", "--invoker", "z@p"]
    )
    assert options.aliases == ("a", "b")
    assert options.invokers == ("x@p.iam", "y@p.iam", "z@p")


def test_options_survive_the_command_line_round_trip() -> None:
    options = EngineOptions(
        model="m", name="n", aliases=("a",), health_path="/ready", load_delay=1.5, ttft=0.25,
        tokens_per_second=42.0, cold_start=2.0, scale_down_after=30.0, min_instances=1,
        audience="https://svc", certs_url="http://127.0.0.1:1/certs", invokers=("x@p", "y@p"),
    )  # fmt: skip
    assert parse_args(["--host", "127.0.0.9", "--port", "0", *options.argv()]) == ("127.0.0.9", 0, options)


async def _stream_over_raw_socket(url: str, body: bytes) -> bool:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    writer.write(f"{head}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    return b"data: [DONE]" in data


def test_one_engine_holds_hundreds_of_concurrent_streams(engine: EngineProcess) -> None:
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream": True}).encode()

    async def all_at_once() -> list[bool]:
        return await asyncio.gather(*(_stream_over_raw_socket(engine.url, body) for _ in range(500)))

    assert all(asyncio.run(all_at_once()))


def test_a_vm_engine_is_loaded_at_its_absolute_ready_time_not_after_its_own_start() -> None:
    import time as _time

    from spotgate.sandbox.engine.options import EngineOptions, parse_args
    from spotgate.sandbox.engine.server import Engine

    assert not Engine(EngineOptions(model="m", ready_at=_time.time() + 60)).loaded()
    assert Engine(EngineOptions(model="m", load_delay=60, ready_at=_time.time() - 1)).loaded()  # ready_at wins
    options = EngineOptions(model="m", ready_at=1234.5)
    assert parse_args(["--port", "1", *options.argv()])[2].ready_at == 1234.5
