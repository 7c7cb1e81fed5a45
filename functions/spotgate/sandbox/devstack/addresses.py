"""Loopback address blocks: each sandbox gets its own 127.a.b.0/24 so two can run side by side.

VM engines bind fixed ports (the pool's ``engine.port``) on their private addresses; two sandboxes in one
machine (parallel tests) would collide if they shared addresses. A sandbox claims a block by holding a
bound socket on the block's ``.1`` address and a fixed claim port for its whole life, and only takes a
block whose engine ports are all free.
"""

from __future__ import annotations

import contextlib
import random
import socket
from collections.abc import Iterable

from spotgate.errors import UnavailableError

CLAIM_PORT = 47_147  # held on 127.a.b.1 while a sandbox owns the block
ATTEMPTS = 64


class AddressBlock:
    """A claimed 127.a.b.0/24. ``address(n)`` is 127.a.b.n; ``release`` gives the block back."""

    def __init__(self, prefix: str, claim: socket.socket) -> None:
        self.prefix = prefix
        self._claim = claim

    def address(self, host: int) -> str:
        if not 2 <= host <= 254:
            raise ValueError("hosts 2..254 of the block are assignable (.1 holds the claim)")
        return f"{self.prefix}.{host}"

    def release(self) -> None:
        self._claim.close()


def claim_block(ports: Iterable[int], rng: random.Random | None = None) -> AddressBlock:
    """Claim a free block whose addresses can bind every port in ``ports``. Raises UnavailableError."""
    rng = rng or random.Random()
    needed = sorted(set(ports))
    for _ in range(ATTEMPTS):
        prefix = f"127.{rng.randint(16, 250)}.{rng.randint(0, 255)}"
        claim = _try_bind(f"{prefix}.1", CLAIM_PORT)
        if claim is None:
            continue
        if all(_bindable(f"{prefix}.2", port) for port in needed):
            return AddressBlock(prefix, claim)
        claim.close()
    taken = [port for port in needed if not _bindable("127.0.0.2", port)]
    hint = f"; ports {taken} are taken on every loopback address (something listens on 0.0.0.0?)" if taken else ""
    raise UnavailableError(f"no free 127.x.y.0/24 block after {ATTEMPTS} attempts{hint}")


def _try_bind(host: str, port: int) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # As the engines do: a port in TIME_WAIT from an earlier run is free; a listening one is not.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1)
    except OSError:
        sock.close()
        return None
    return sock


def _bindable(host: str, port: int) -> bool:
    sock = _try_bind(host, port)
    if sock is None:
        return False
    with contextlib.suppress(OSError):
        sock.close()
    return True
