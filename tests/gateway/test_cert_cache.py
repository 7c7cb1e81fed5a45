"""The certificate cache: one refetch at a time while the others keep using still-valid certificates, and a
failed refetch falls back to them instead of failing every ID-token caller."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import pytest
from google.auth import exceptions as auth_exceptions

from gateway.auth import CachingRequest

URL = "https://certs.test/oauth2/v1/certs"


@dataclass
class Answer:
    status: int
    data: bytes = b"{}"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Certs:
    """A certificate endpoint: counts fetches; ``gate`` holds each fetch until set; ``fail`` breaks it."""

    def __init__(self) -> None:
        self.fetches = 0
        self.gate = threading.Event()
        self.gate.set()
        self.fail: Exception | Answer | None = None

    def __call__(self, url: str, **_: Any) -> Answer:
        self.fetches += 1
        self.gate.wait(10)
        if isinstance(self.fail, Exception):
            raise self.fail
        return self.fail or Answer(200, f"certs-{self.fetches}".encode())


def test_an_expired_cache_is_refetched_once_while_others_use_the_cached_certs() -> None:
    certs, clock = Certs(), Clock()
    cache = CachingRequest(certs, ttl=300, monotonic=clock)  # type: ignore[arg-type]
    assert cache(URL).data == b"certs-1"
    clock.now = 301
    certs.gate.clear()
    refetch = threading.Thread(target=cache, args=(URL,))
    refetch.start()
    others = [cache(URL).data for _ in range(5)]  # while the refetch hangs
    certs.gate.set()
    refetch.join(10)
    assert others == [b"certs-1"] * 5
    assert certs.fetches == 2
    assert cache(URL).data == b"certs-2"


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(auth_exceptions.TransportError("down"), id="transport-error"),
        pytest.param(Answer(503, b"busy"), id="server-error"),
    ],
)
def test_a_failed_refetch_falls_back_to_still_valid_certs(failure: Exception | Answer) -> None:
    certs, clock = Certs(), Clock()
    cache = CachingRequest(certs, ttl=300, monotonic=clock, max_stale=3600)  # type: ignore[arg-type]
    cache(URL)
    certs.fail = failure
    clock.now = 600
    assert cache(URL).data == b"certs-1"
    clock.now = 3601  # too old to trust: the failure shows
    if isinstance(failure, Exception):
        with pytest.raises(auth_exceptions.TransportError):
            cache(URL)
    else:
        assert cache(URL).status == 503
