"""Fixtures for every test directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sdk import close_sdk_clients


@pytest.fixture(autouse=True, scope="module")
def _close_sdk_clients() -> Iterator[None]:
    yield
    close_sdk_clients()
