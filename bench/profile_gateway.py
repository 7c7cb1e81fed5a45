"""Where a proxied request's CPU goes: the gateway's WSGI app under cProfile, in process, one engine.

    python -m bench.profile_gateway [--requests 3000] [--top 25]

The app is called directly with WSGI environs (no HTTP server in front), so what is measured is the
gateway's own work per request: Flask routing, authentication, limits, body, JSON, forwarding with urllib3
to a real sandbox engine on loopback, relaying and logging. It prints the mean wall time per request and
the functions with the most own time and the most cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from werkzeug.test import EnvironBuilder

from bench import processes
from gateway.app import EXTENSION, create_app
from gateway.auth import CachingRequest
from gateway.runtime import Dependencies
from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.apikeys import generate_key
from spotgate.clock import SystemClock
from spotgate.domain import ApiKey, BackendKind, Route, RouteState
from spotgate.fleet import parse_fleet
from spotgate.settings import GatewaySettings

BODY = json.dumps({"model": "fast-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8})


class _NoPublisher:
    def publish(self, topic: str, message: Any) -> str:
        return "0"


class _NoTokens:
    def id_token(self, audience: str) -> str:
        raise AssertionError("no overflow in this profile")


def _call(app: Any, environ: dict[str, Any]) -> int:
    status: list[str] = []
    body: Iterable[bytes] = app(environ, lambda s, h, e=None: status.append(s))
    try:
        for _ in body:
            pass
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return int(status[0].split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        processes.engine("127.0.91.2", "fast-model", ttft=0, tokens_per_second=1e6) as url,
    ):
        store = SqliteStore(Path(tmp) / "profile.db")
        new = generate_key()
        store.put_key(ApiKey(new.key_id, "profile", new.secret_hash, datetime.now(UTC)))
        store.put_routes([Route("fast", "fast-vm", BackendKind.VM, url, RouteState.READY, "p", datetime.now(UTC))])
        fleet = parse_fleet({"pools": [{"name": "fast", "model": "fast-model", "spot": {"zones": ["us-central1-a"]}}]})
        deps = Dependencies(GatewaySettings(url="https://gw.test"), fleet, store, _NoPublisher(), SystemClock(),
                            _NoTokens(), CachingRequest(None), "control")  # type: ignore[arg-type]  # fmt: skip
        app = create_app(deps)
        headers = {"Authorization": f"Bearer {new.secret}", "Content-Type": "application/json"}

        def environ() -> dict[str, Any]:
            return EnvironBuilder(path="/v1/chat/completions", method="POST", data=BODY, headers=headers).get_environ()

        for _ in range(200):  # warm up: connections, caches
            assert _call(app, environ()) == 200
        environs = [environ() for _ in range(args.requests)]
        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.enable()
        for env in environs:
            _call(app, env)
        profile.disable()
        elapsed = time.perf_counter() - started
        app.extensions[EXTENSION].close()
        store.close()
    print(f"{args.requests} requests, {elapsed / args.requests * 1000:.3f} ms each under cProfile")
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profile, stream=out).strip_dirs().sort_stats(order).print_stats(args.top)
        print(out.getvalue())


if __name__ == "__main__":
    main()
