"""OpenAI SDK clients for tests, each closed when its test module ends.

An SDK client keeps its HTTP connections alive in a pool. Left to the garbage collector, a pooled socket can
be finalised before the client that would close it (they sit in one reference cycle), which raises a
``ResourceWarning`` inside whichever later test happens to run the collection: a failure far from its cause.
"""

from __future__ import annotations

from typing import Any

from openai import OpenAI

_open: list[OpenAI] = []


def sdk_client(**options: Any) -> OpenAI:
    """``OpenAI(**options)``, closed by the autouse fixture in ``tests/conftest.py`` when its test module ends
    (a module-scoped fixture may hand one client to several tests)."""
    client = OpenAI(**options)
    _open.append(client)
    return client


def close_sdk_clients() -> None:
    while _open:
        _open.pop().close()
