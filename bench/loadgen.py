"""An open-loop HTTP/1.1 load generator on asyncio, lean enough to share two cores with what it measures.

Why hand-written: the measured quantity is a millisecond or less, so the client must add little and, above
all, the same to both sides. Requests are sent at fixed times (open loop: a slow server does not slow the
schedule, so queueing shows up in the latencies instead of being hidden), and latency is measured from the
*scheduled* send time. Connections are kept alive and reused; a new one is opened only when all are busy.
Responses are parsed just enough (Content-Length or chunked) to time the first byte and every chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int
    request: bytes  # a complete HTTP/1.1 request with keep-alive


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> Target:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return Target(host, port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body)


@dataclass(slots=True)
class Reply:
    status: int
    sent: float  # scheduled send time
    first: float  # first body byte (for chunked: first chunk)
    done: float
    chunks: list[float] = field(default_factory=list)  # arrival time of every chunk carrying "data:"


class _Connections:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle:
            return self.idle.pop()
        return await asyncio.open_connection(self.target.host, self.target.port, limit=1 << 20)

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


async def _read_reply(reader: asyncio.StreamReader, sent: float) -> tuple[Reply, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    now = time.perf_counter
    status = int(head.split(b" ", 2)[1])
    lower = head.lower()
    reply = Reply(status, sent, 0.0, 0.0)
    keep = b"connection: close" not in lower
    if b"transfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            data = await reader.readexactly(size + 2)
            t = now()
            reply.first = reply.first or t
            if b"data:" in data:
                reply.chunks.append(t)
    else:
        length = next(
            (int(line.split(b":")[1]) for line in lower.split(b"\r\n") if line.startswith(b"content-length:")), None
        )
        if length is None:
            await reader.read()
            keep = False
        else:
            await reader.readexactly(length)
        reply.first = now()
    reply.done = now()
    return reply, keep


async def _one(conns: _Connections, sent: float, replies: list[Reply], errors: list[str]) -> None:
    try:
        reader, writer = await conns.take()
    except OSError as e:
        errors.append(f"connect: {e}")
        return
    try:
        writer.write(conns.target.request)
        reply, keep = await _read_reply(reader, sent)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
        errors.append(type(e).__name__)
        writer.close()
        return
    replies.append(reply)
    if reply.status != 200:
        errors.append(f"status {reply.status}")
    if keep:
        conns.idle.append((reader, writer))
    else:
        writer.close()


async def open_loop(
    target: Target, rate: float, seconds: float, *, grace: float = 10.0
) -> tuple[list[Reply], list[str]]:
    """Send ``rate`` requests per second for ``seconds`` (open loop); wait at most ``grace`` for stragglers."""
    conns = _Connections(target)
    replies: list[Reply] = []
    errors: list[str] = []
    start = time.perf_counter() + 0.05
    total = int(rate * seconds)
    tasks = []
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_one(conns, due, replies, errors)))
    _, pending = await asyncio.wait(tasks, timeout=grace) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    errors += ["timeout"] * len(pending)
    with contextlib.suppress(Exception):
        await asyncio.gather(*pending, return_exceptions=True)
    conns.close()
    return replies, errors


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]
