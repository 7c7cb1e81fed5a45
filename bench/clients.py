"""Candidates for the gateway's upstream client: CPU and latency per proxied request, same conditions.

    python -m bench.clients [--requests 2000] [--concurrency 1,20]

urllib3, httpx, geventhttpclient (a gevent-native client with a C parser) through its own ``HTTPClient``, and
``gateway.upstream``: the gateway's client, which uses only geventhttpclient's parser on its own pool.

Runs under gevent's monkey-patching, like the gateway's worker, against one sandbox engine (TCP_NODELAY, see
``spotgate.sandbox.engine.server``). Each client keeps a pool of keep-alive connections and reads the whole
body of a small non-streaming chat completion; CPU per request is this process's CPU time divided by requests, which is
what the client costs the gateway worker.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable


def _urllib3_client(base: str) -> Callable[[bytes], int]:
    import urllib3

    pool = urllib3.connection_from_url(base, maxsize=64, block=False, retries=False)

    def call(body: bytes) -> int:
        r = pool.urlopen("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"},
                         preload_content=False, redirect=False)  # fmt: skip
        for _ in r.stream(65536, decode_content=False):
            pass
        r.release_conn()
        return r.status

    return call


def _httpx_client(base: str) -> Callable[[bytes], int]:
    import httpx2 as httpx  # the installed httpx major version (the OpenAI SDK's HTTP client)

    client = httpx.Client(base_url=base, limits=httpx.Limits(max_keepalive_connections=64))

    def call(body: bytes) -> int:
        with client.stream("POST", "/v1/chat/completions", content=body,
                           headers={"Content-Type": "application/json"}) as r:  # fmt: skip
            for _ in r.iter_raw():
                pass
            return r.status_code

    return call


def _geventhttpclient_client(base: str) -> Callable[[bytes], int]:
    from urllib.parse import urlsplit

    from geventhttpclient import HTTPClient

    url = urlsplit(base)
    client = HTTPClient(url.hostname or "127.0.0.1", url.port, concurrency=64, connection_timeout=5, network_timeout=30)

    def call(body: bytes) -> int:
        r = client.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
        while r.read(65536):
            pass
        r.release()
        return int(r.status_code)

    return call


def _upstream_client(base: str) -> Callable[[bytes], int]:
    from datetime import timedelta

    from gateway.upstream import Upstreams, body_chunks

    upstreams = Upstreams(connect_timeout=timedelta(seconds=5), read_timeout=timedelta(seconds=30))

    def call(body: bytes) -> int:
        r = upstreams.open(base, "POST", "/v1/chat/completions", {"Content-Type": "application/json"}, body)
        for _ in body_chunks(r):
            pass
        return r.status

    return call


def _clients() -> tuple[tuple[str, Callable[[str], Callable[[bytes], int]]], ...]:
    return (
        ("urllib3", _urllib3_client),
        ("httpx", _httpx_client),
        ("geventhttpclient", _geventhttpclient_client),
        ("gateway.upstream", _upstream_client),
    )


def measure(call: Callable[[bytes], int], requests: int, concurrency: int) -> tuple[float, float, float]:
    """(CPU ms per request, p50 ms, p99 ms)."""
    import gevent
    from gevent.pool import Pool

    body = json.dumps({"model": "fast-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16})
    payload = body.encode()
    for _ in range(50):
        call(payload)
    latencies: list[float] = []

    def one(_: int) -> None:
        started = time.perf_counter()
        assert call(payload) == 200
        latencies.append((time.perf_counter() - started) * 1000)

    cpu = time.process_time()
    Pool(concurrency).map(one, range(requests))
    cpu_ms = (time.process_time() - cpu) * 1000 / requests
    gevent.sleep(0)
    latencies.sort()
    return cpu_ms, latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]


def main() -> None:
    from gevent import monkey

    monkey.patch_all()
    from bench import processes

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", default="1,20")
    a = p.parse_args()
    with processes.engine("127.0.91.5", "fast-model", ttft=0, tokens_per_second=1e6) as base:
        print("| client | concurrency | CPU per request | p50 | p99 |")
        print("|---|---:|---:|---:|---:|")
        for concurrency in (int(c) for c in a.concurrency.split(",")):
            for name, make in _clients() * 2:
                cpu, p50, p99 = measure(make(base), a.requests, concurrency)
                print(f"| {name} | {concurrency} | {cpu:.3f} ms | {p50:.2f} ms | {p99:.2f} ms |", flush=True)


if __name__ == "__main__":
    main()
