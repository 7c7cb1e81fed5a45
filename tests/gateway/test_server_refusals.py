"""Requests gunicorn's parser refuses (request line too long, too many header fields, malformed HTTP) get
the OpenAI error shape with a machine ``code``, ``x-should-retry: false`` and ``Connection: close``, and one
access line each that names no caller and holds nothing the client sent (production gunicorn)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from gunicorn.http import errors as http_errors

from gateway.refusals import refusal
from spotgate.adapters.sqlite_store import SqliteStore
from tests.gateway.gunicorn import free_port, gateway_env, running_gunicorn
from tests.gateway.stack import fleet_document, wait_until

SECRET = "sg-" + "s" * 43  # a credential in a refused request: it must appear in no log line and no answer
LONG_LINE = f"GET /v1/models?key={SECRET}{'a' * 9000} HTTP/1.1\r\nHost: gw\r\n\r\n"
MANY_FIELDS = (
    "GET /v1/models HTTP/1.1\r\nHost: gw\r\n"
    f"Authorization: Bearer {SECRET}\r\n" + "".join(f"X-Filler-{i}: {i}\r\n" for i in range(120)) + "\r\n"
)
BAD_HEADER = f"GET /v1/models HTTP/1.1\r\nHost: gw\r\nX Secret: {SECRET}\r\n\r\n"  # a space in a name
BAD_LINE = "HELLO THERE\r\n\r\n"


def exchange(host: str, port: int, raw: str) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw``; the status, headers (lower-cased names) and body of the answer, read to the close."""
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall(raw.encode("latin-1"))
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    return int(status_line.split(" ")[1]), headers, body


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        pytest.param(LONG_LINE, 414, "request_line_too_long", id="request-line-too-long"),
        pytest.param(MANY_FIELDS, 431, "request_headers_too_large", id="too-many-header-fields"),
        pytest.param(BAD_HEADER, 400, "malformed_request", id="malformed-header-name"),
        pytest.param(BAD_LINE, 400, "malformed_request", id="malformed-request-line"),
    ],
)
def test_a_request_gunicorn_refuses_gets_an_openai_error_and_an_access_line(
    served: tuple[str, int, Path], raw: str, status: int, code: str
) -> None:
    host, port, log = served
    got, headers, body = exchange(host, port, raw)
    assert got == status
    assert headers["content-type"] == "application/json"
    assert (headers["x-should-retry"], headers["connection"]) == ("false", "close")
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["code"], error["type"]) == (code, "invalid_request_error")
    assert wait_until(lambda: headers["x-request-id"] in {e["request_id"] for e in _access_lines(log)})
    line = next(e for e in _access_lines(log) if e["request_id"] == headers["x-request-id"])
    assert (line["status"], line["code"], line["caller"], line["refused_by"]) == (status, code, None, "gunicorn")
    assert SECRET not in log.read_text()
    assert SECRET not in body.decode()


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        pytest.param(http_errors.LimitRequestLine(9000, 8190), 414, "request_line_too_long", id="line"),
        pytest.param(http_errors.LimitRequestHeaders("fields"), 431, "request_headers_too_large", id="fields"),
        pytest.param(http_errors.InvalidRequestLine("x"), 400, "malformed_request", id="request-line"),
        pytest.param(http_errors.InvalidHeaderName("X Y"), 400, "malformed_request", id="header-name"),
        pytest.param(http_errors.InvalidChunkSize(b"zz"), 400, "malformed_request", id="chunk-size"),
        pytest.param(http_errors.UnsupportedTransferCoding("gzip"), 501, "unsupported_transfer_coding", id="coding"),
        pytest.param(http_errors.InvalidResponseHeaderName("X Y"), 500, "internal_error", id="app-header"),
        pytest.param(RuntimeError("boom"), 500, "internal_error", id="unexpected"),
    ],
)
def test_refusal_table(exc: BaseException, status: int, code: str) -> None:
    error = refusal(exc)
    assert (error.status, error.code) == (status, code)
    assert (error.headers().get("x-should-retry") == "false") == (status != 500)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp_path = tmp_path_factory.mktemp("refusals")
    store = SqliteStore(tmp_path / "gateway.db", poll_interval=0.05)
    env = gateway_env(tmp_path / "gateway.db", fleet_document(), free_port())
    log = tmp_path / "gateway.log"
    try:
        with log.open("wb") as stderr, running_gunicorn(env, stderr=stderr) as server:
            host, port = server.url.removeprefix("http://").split(":")
            yield host, int(port), log
    finally:
        store.close()


def _access_lines(log: Path) -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [e for e in entries if e.get("access")]
