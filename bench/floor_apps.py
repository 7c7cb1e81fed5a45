"""The bare WSGI apps ``bench.gateway_floor`` serves next to the gateway: what one gunicorn gevent worker costs
per request with nothing of spotgate in it.

- ``answer``: reads the body and answers a fixed chat completion (the server alone);
- ``urllib3_proxy``: forwards the body to the engine with a urllib3 pool and relays the answer (the server plus
  the gateway's HTTP client, no framework, no checks);
- ``flask_urllib3_proxy``: the same inside a Flask view (plus the framework);
- ``flask_geventhttpclient_proxy``: a Flask view forwarding with the gateway's own client: the framework and
  client spotgate is built on, so spotgate's row above it is spotgate's own work;
- ``geventhttpclient_proxy``: the ``urllib3_proxy`` app forwarding with the gateway's own client instead
  (``gateway.upstream``: geventhttpclient's C parser on a pooled socket), so the two clients compare bare.

The engine's address comes from ``BENCH_ENGINE`` (``http://host:port``), read when the module is imported in
the worker.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

import urllib3
from flask import Flask, Response, request

from gateway.upstream import Upstreams, body_chunks

StartResponse = Callable[..., Any]
ANSWER = (
    b'{"id":"chatcmpl-floor","object":"chat.completion","created":0,"model":"fast-model","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"floor"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}'
)
_JSON = {"Content-Type": "application/json"}


def answer(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(ANSWER)))])
    return [ANSWER]


def _engine_pool() -> urllib3.HTTPConnectionPool:
    host, port = os.environ.get("BENCH_ENGINE", "http://127.0.0.1:9").removeprefix("http://").split(":")
    return urllib3.HTTPConnectionPool(host, int(port), maxsize=64, block=False, retries=False)


_pool = _engine_pool()
_upstreams = Upstreams(connect_timeout=timedelta(seconds=5), read_timeout=timedelta(seconds=60))


def _forward(body: bytes) -> tuple[int, bytes]:
    reply = _pool.urlopen("POST", "/v1/chat/completions", body=body, headers=_JSON, preload_content=False)
    data = reply.read()
    reply.release_conn()
    return reply.status, data


def urllib3_proxy(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    status, data = _forward(environ["wsgi.input"].read())
    start_response(f"{status} OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def geventhttpclient_proxy(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    engine = os.environ.get("BENCH_ENGINE", "http://127.0.0.1:9")
    reply = _upstreams.open(engine, "POST", "/v1/chat/completions", _JSON, environ["wsgi.input"].read())
    data = b"".join(body_chunks(reply))
    start_response(f"{reply.status} OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


flask_urllib3_proxy = Flask("floor")


@flask_urllib3_proxy.post("/v1/<path:endpoint>")
def _proxied(endpoint: str) -> Response:
    status, data = _forward(request.get_data())
    return Response(data, status=status, content_type="application/json")


flask_geventhttpclient_proxy = Flask("floor-gateway-client")


@flask_geventhttpclient_proxy.post("/v1/<path:endpoint>")
def _proxied_by_the_gateways_client(endpoint: str) -> Response:
    engine = os.environ.get("BENCH_ENGINE", "http://127.0.0.1:9")
    reply = _upstreams.open(engine, "POST", "/v1/chat/completions", _JSON, request.get_data())
    return Response(b"".join(body_chunks(reply)), status=reply.status, content_type="application/json")
