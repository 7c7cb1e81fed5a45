"""The fake engine's options and its command line, shared by the engine and the code that launches it.

One definition for both sides: ``EngineOptions.argv()`` renders what ``parse_args`` reads back, so the
launcher and the engine cannot drift apart. This module stays import-light (stdlib only) because the
engine process imports it before gevent monkey-patches.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """How the engine behaves. Durations are real seconds (the sandbox has already applied its speedup)."""

    model: str
    name: str = "engine"
    aliases: tuple[str, ...] = ()
    health_path: str = "/health"
    load_delay: float = 0.0
    ready_at: float | None = None  # wall-clock (epoch) time the model is loaded; wins over load_delay
    ttft: float = 0.0
    tokens_per_second: float = 1000.0
    cold_start: float = 0.0
    scale_down_after: float = 60.0
    min_instances: int = 0
    audience: str | None = None
    certs_url: str | None = None
    invokers: tuple[str, ...] = ()

    def argv(self) -> list[str]:
        """These options as ``python -m spotgate.sandbox.engine.server`` arguments (without host and port)."""
        args = ["--model", self.model, "--name", self.name, "--health-path", self.health_path]
        args += ["--load-delay", f"{self.load_delay:.3f}", "--ttft", f"{self.ttft:.3f}"]
        if self.ready_at is not None:
            args += ["--ready-at", f"{self.ready_at:.3f}"]
        args += ["--tokens-per-second", str(self.tokens_per_second), "--cold-start", f"{self.cold_start:.3f}"]
        args += ["--scale-down-after", f"{self.scale_down_after:.3f}", "--min-instances", str(self.min_instances)]
        args += [arg for alias in self.aliases for arg in ("--alias", alias)]
        if self.audience and self.certs_url:
            args += ["--audience", self.audience, "--certs-url", self.certs_url]
        return args + [arg for invoker in self.invokers for arg in ("--invoker", invoker)]


def parse_args(argv: list[str] | None = None) -> tuple[str, int, EngineOptions]:
    p = argparse.ArgumentParser(
        prog="python -m spotgate.sandbox.engine.server", description="A fake OpenAI-compatible engine."
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--alias", action="extend", nargs="+", default=[], help="other model names it answers to")
    p.add_argument("--name", default=None, help="backend name for x-spotgate-backend (default host:port)")
    p.add_argument("--health-path", default="/health")
    p.add_argument("--load-delay", type=float, default=0.0)
    p.add_argument("--ready-at", type=float, default=None, help="epoch seconds when /health turns 200")
    p.add_argument("--ttft", type=float, default=0.0)
    p.add_argument("--tokens-per-second", type=float, default=1000.0)
    p.add_argument("--cold-start", type=float, default=0.0)
    p.add_argument("--scale-down-after", type=float, default=60.0)
    p.add_argument("--min-instances", type=int, default=0)
    p.add_argument("--audience")
    p.add_argument("--certs-url")
    p.add_argument("--invoker", action="extend", nargs="+", default=[], help="emails allowed to invoke")
    a = p.parse_args(argv)
    if bool(a.audience) != bool(a.certs_url):
        p.error("--audience and --certs-url go together")
    if a.tokens_per_second <= 0:
        p.error("--tokens-per-second must be positive")
    options = EngineOptions(
        model=a.model,
        name=a.name or f"{a.host}:{a.port}",
        aliases=tuple(a.alias),
        health_path=a.health_path,
        load_delay=a.load_delay,
        ready_at=a.ready_at,
        ttft=a.ttft,
        tokens_per_second=a.tokens_per_second,
        cold_start=a.cold_start,
        scale_down_after=a.scale_down_after,
        min_instances=a.min_instances,
        audience=a.audience,
        certs_url=a.certs_url,
        invokers=tuple(a.invoker),
    )
    return a.host, a.port, options
