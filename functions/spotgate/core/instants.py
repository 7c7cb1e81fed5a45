"""How the core writes instants into reasons: compact UTC, because reasons are read in logs and the CLI."""

from __future__ import annotations

from datetime import UTC, datetime


def zulu(at: datetime) -> str:
    """``2026-11-23T12:05:00Z``; the far-future sentinel of an open-ended override reads "the next wake"."""
    if at.year == datetime.max.year:
        return "the next wake"
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clock(at: datetime) -> str:
    """``12:05:00Z``, for reasons about the last few minutes."""
    return at.astimezone(UTC).strftime("%H:%M:%SZ")
