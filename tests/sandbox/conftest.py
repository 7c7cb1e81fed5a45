"""Sandbox-cloud fixtures: a fresh cloud per test, or one per module for read-only tests.

Every cloud is stopped in ``finally``, and the fixture then checks that no engine process it started
survived ``stop()``, so a leak fails the test that caused it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spotgate.sandbox.devstack.cloud import SandboxCloud
from spotgate.sandbox.metadata.identity import Identity
from tests.sandbox.sandbox_support import a_fleet, alive, engine_pids


@pytest.fixture(scope="session")
def identity() -> Identity:
    """One RSA key for every test cloud: generating one costs up to a second on a busy machine."""
    return Identity.generate()


def running_cloud(state_dir: Path, identity: Identity, overflow: bool = True, **timings: Any) -> Iterator[SandboxCloud]:
    """A running sandbox of the example fleet; afterwards no engine process it started is alive."""
    sandbox = SandboxCloud(a_fleet(overflow=overflow, **timings), state_dir, identity=identity)
    pids: list[int] = []
    try:
        sandbox.start()
        yield sandbox
    finally:
        pids = engine_pids(sandbox)
        sandbox.stop()
    assert [pid for pid in pids if alive(pid)] == []


@pytest.fixture
def cloud(tmp_path: Path, identity: Identity) -> Iterator[SandboxCloud]:
    """A fresh sandbox per test, for tests that start, stop, preempt or stock out."""
    yield from running_cloud(tmp_path / ".spotgate", identity)


@pytest.fixture
def compute_cloud(request: pytest.FixtureRequest, tmp_path: Path, identity: Identity) -> Iterator[SandboxCloud]:
    """Like ``cloud`` without the overflow services (quicker), for tests of Compute Engine alone.

    Parametrize it indirectly with a dict to override sandbox timings, e.g. ``{"preempt_notice": 1500}``.
    """
    timings = getattr(request, "param", {})
    yield from running_cloud(tmp_path / ".spotgate", identity, overflow=False, **timings)


@pytest.fixture(scope="module")
def shared_cloud(tmp_path_factory: pytest.TempPathFactory, identity: Identity) -> Iterator[SandboxCloud]:
    """One sandbox for a module's read-only tests (they must not change VM states)."""
    yield from running_cloud(tmp_path_factory.mktemp("sandbox"), identity)
