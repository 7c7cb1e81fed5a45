"""The production entry point under gunicorn's gevent worker: settings from the environment, the SQLite
store, ID tokens for overflow fetched from the (sandbox) metadata server, streaming, and hang-ups."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import requests

from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.domain import BackendKind
from spotgate.settings import environment
from tests.gateway.conftest import GATEWAY_EMAIL
from tests.gateway.servers import RecordingServer, raw_request, send_raw
from tests.gateway.stack import a_host, a_key, a_route, fleet_document, wait_until

ROOT = Path(__file__).resolve().parents[2]
MESSAGES: list[dict[str, str]] = [{"role": "user", "content": "hi"}]


@pytest.fixture
def gunicorn(tmp_path, metadata, engines) -> Iterator[tuple[str, SqliteStore, RecordingServer]]:
    overflow = engines(
        "burst-model", "burst-overflow", "--audience", "https://burst.run.app",
        "--certs-url", metadata.certs_url, "--invoker", GATEWAY_EMAIL,
    )  # fmt: skip
    chat = engines("chat-model", "chat-a", "--tokens-per-second", "200")
    store = SqliteStore(tmp_path / "gateway.db", poll_interval=0.05)
    with RecordingServer(a_host(), sse=True) as sse:
        store.put_routes(
            [
                a_route("chat", chat.name, chat.url),
                a_route("embed", "embed-sse", sse.url),
                a_route("burst", "burst-overflow", overflow.url, kind=BackendKind.OVERFLOW),
            ]
        )
        port = _free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "run_service/gunicorn.conf.py",
             "gateway.wsgi:create_production_app()"],
            cwd=ROOT, env=_env(tmp_path, metadata, overflow.url, port),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            assert wait_until(lambda: _healthy(url), timeout=20)
            yield url, store, sse
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
            store.close()


def _env(tmp_path: Path, metadata, overflow_url: str, port: int) -> dict[str, str]:
    env = environment()
    env.update(
        PORT=str(port),
        WEB_CONCURRENCY="1",
        SPOTGATE_MODE="sandbox",
        SPOTGATE_STORE="sqlite",
        SPOTGATE_SQLITE_PATH=str(tmp_path / "gateway.db"),
        SPOTGATE_FLEET=json.dumps(fleet_document(overflow_url=overflow_url)),
        SPOTGATE_GATEWAY_URL="https://gateway.test",
        SPOTGATE_GATEWAY_CERTS_URL=metadata.certs_url,
        SPOTGATE_GATEWAY_HEARTBEAT="0.2s",
        SPOTGATE_GATEWAY_ACTIVITY_FLUSH="0.1s",
        GCE_METADATA_HOST=metadata.address,
        GCE_METADATA_IP=metadata.address,
        PUBSUB_EMULATOR_HOST="127.0.0.1:9",  # nothing listens: wakes fail off the request path, harmlessly
    )
    return env


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=2).json().get("status") == "live"
    except (requests.RequestException, ValueError):
        return False


def test_streams_overflow_and_hang_ups_under_gunicorn(gunicorn) -> None:
    url, store, sse = gunicorn
    secret, _ = a_key(store, passthrough=True)
    assert wait_until(lambda: _authorised(url, secret))
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=secret, max_retries=0, timeout=20)

    chunks = list(client.chat.completions.create(model="chat-model", messages=MESSAGES, stream=True, max_tokens=6))
    assert chunks[-1].choices[0].finish_reason == "length"

    raw = client.chat.completions.with_raw_response.create(model="burst-model", messages=MESSAGES)
    assert raw.headers["x-spotgate-backend"] == "burst-overflow"  # ID token from the metadata server

    headers = {"Authorization": f"Bearer {secret}", "Accept": "text/event-stream"}
    with requests.get(f"{url}/pools/embed/events", headers=headers, stream=True, timeout=20) as r:
        assert next(r.iter_lines()) == b"data: 0"
    assert sse.recorder.disconnected.wait(10)
    client.close()  # an idle keep-alive connection would hold gunicorn's graceful shutdown open

    host, port = url.removeprefix("http://").split(":")
    for path in (f"http://{sse.hostport}/pools/embed/x", "/pools/embed/%2e%2e/%2e%2e/x", "/pools/embed/..%2f..%2fx"):
        assert send_raw(host, int(port), raw_request("GET", path, secret)) == 400
    assert sse.recorder.requests == [
        "GET /events"
    ]  # an idle keep-alive connection would hold gunicorn's graceful shutdown open


def _authorised(url: str, secret: str) -> bool:
    response = requests.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {secret}"}, timeout=5)
    return response.status_code == 200
