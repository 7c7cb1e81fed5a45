"""The production entry point under gunicorn's gevent worker: settings from the environment, the SQLite
store, ID tokens for overflow fetched from the (sandbox) metadata server, streaming, hang-ups, and its logs:
JSON lines only, one access line per request, no secret."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.domain import BackendKind
from tests.gateway.conftest import GATEWAY_EMAIL
from tests.gateway.gunicorn import free_port, gateway_env, running_gunicorn
from tests.gateway.servers import RecordingServer, raw_request, send_raw
from tests.gateway.stack import a_host, a_key, a_route, fleet_document, wait_until
from tests.sdk import sdk_client

MESSAGES: list[dict[str, str]] = [{"role": "user", "content": "hi"}]


@dataclass(frozen=True)
class Served:
    url: str
    store: SqliteStore
    sse: RecordingServer
    log: Path  # the gateway's stderr


@pytest.fixture
def gunicorn(tmp_path, metadata, engines) -> Iterator[Served]:
    overflow = engines(
        "burst-model", "burst-overflow", "--audience", "https://burst.run.app",
        "--certs-url", metadata.certs_url, "--invoker", GATEWAY_EMAIL,
    )  # fmt: skip
    chat = engines("chat-model", "chat-a", "--tokens-per-second", "200")
    store = SqliteStore(tmp_path / "gateway.db", poll_interval=0.05)
    fleet = fleet_document(overflow_url=overflow.url)
    env = gateway_env(tmp_path / "gateway.db", fleet, free_port(), SPOTGATE_GATEWAY_CERTS_URL=metadata.certs_url,
                      GCE_METADATA_HOST=metadata.address, GCE_METADATA_IP=metadata.address)  # fmt: skip
    log = tmp_path / "gateway.log"
    try:
        with RecordingServer(a_host(), sse=True) as sse, log.open("wb") as stderr:
            store.put_routes(
                [
                    a_route("chat", chat.name, chat.url),
                    a_route("embed", "embed-sse", sse.url),
                    a_route("burst", "burst-overflow", overflow.url, kind=BackendKind.OVERFLOW),
                ]
            )
            with running_gunicorn(env, stderr=stderr) as server:
                yield Served(server.url, store, sse, log)
    finally:
        store.close()


def test_streams_overflow_and_hang_ups_under_gunicorn(gunicorn: Served) -> None:
    url, store, sse = gunicorn.url, gunicorn.store, gunicorn.sse
    secret, _ = a_key(store, passthrough=True)
    assert wait_until(lambda: _authorised(url, secret))
    client = sdk_client(base_url=f"{url}/v1", api_key=secret, max_retries=0, timeout=20)

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


def test_every_request_has_one_json_access_line_and_no_log_holds_a_secret(gunicorn: Served) -> None:
    url = gunicorn.url
    secret, key = a_key(gunicorn.store, passthrough=True)
    assert wait_until(lambda: _authorised(url, secret))
    sent: dict[str, int] = {}

    def call(method: str, path: str, credential: str, **kwargs: object) -> None:
        rid = f"t-{len(sent)}"
        headers = {"Authorization": f"Bearer {credential}", "x-request-id": rid}
        with requests.request(method, url + path, headers=headers, timeout=20, **kwargs) as r:  # type: ignore[arg-type]
            r.content  # noqa: B018 - the whole body, so the response is closed and logged
            sent[rid] = r.status_code

    chat = {"model": "chat-model", "messages": MESSAGES, "max_tokens": 4}
    call("POST", "/v1/chat/completions", secret, json=chat)
    call("POST", "/v1/chat/completions", secret, json={**chat, "stream": True})
    call("POST", "/v1/chat/completions", secret, json={**chat, "model": "burst-model"})
    call("POST", "/v1/chat/completions", "sg-" + "x" * 43, json=chat)
    call("POST", "/v1/chat/completions", secret, data=b"{")
    call("GET", "/v1/models", secret)
    call("GET", "/pools/chat/v1/models", secret)
    call("GET", "/nowhere", secret)
    assert wait_until(lambda: set(sent) <= {e.get("request_id") for e in _access_lines(gunicorn.log)})

    lines = gunicorn.log.read_text().splitlines()
    assert all(json.loads(line)["severity"] for line in lines if line.strip())  # every line is JSON
    access = {e["request_id"]: e for e in _access_lines(gunicorn.log) if e["request_id"] in sent}
    assert {rid: e["status"] for rid, e in access.items()} == sent
    assert access["t-0"]["caller"] == key.key_id
    assert (access["t-0"]["pool"], access["t-0"]["backend"], access["t-0"]["backend_kind"]) == ("chat", "chat-a", "vm")
    assert access["t-0"]["tokens_in"] > 0
    assert access["t-0"]["tokens_out"] == 4
    assert access["t-2"]["backend_kind"] == "overflow"
    assert access["t-3"]["caller"] is None
    assert secret not in gunicorn.log.read_text()
    assert secret.removeprefix("sg-") not in gunicorn.log.read_text()


def _access_lines(log: Path) -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [e for e in entries if e.get("access")]


def test_back_to_back_requests_on_one_keep_alive_connection_all_succeed(gunicorn: Served) -> None:
    """Regression: a non-streaming request's hang-up watcher still waited on the caller's socket when gunicorn
    read the connection's next request, which then failed (gevent ConcurrentObjectUseError: 500 or reset)."""
    secret, _ = a_key(gunicorn.store)
    assert wait_until(lambda: _authorised(gunicorn.url, secret))
    body = {"model": "chat-model", "messages": MESSAGES, "max_tokens": 2}
    headers = {"Authorization": f"Bearer {secret}"}
    with requests.Session() as session:
        statuses = [
            session.post(f"{gunicorn.url}/v1/chat/completions", json=body, headers=headers, timeout=20).status_code
            for _ in range(40)
        ]
    assert statuses == [200] * 40
