"""The request process a simulated pool serves: when each request arrives and how long it runs.

Three sources: a constant rate (the simplest thing to reason about), a Poisson process whose rate follows a
daily profile (24 hourly multipliers, as real chat traffic does), or a CSV of real request timestamps and
durations. Every source is an iterator of ``Arrival`` in time order, so a long run never holds all of them.
"""

from __future__ import annotations

import csv
import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from spotgate.errors import ConfigError

HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class Arrival:
    """A request arriving ``at`` seconds from the start, keeping a backend busy for ``duration`` seconds."""

    at: float
    duration: float


def constant(interval: float, duration: float, length: float) -> Iterator[Arrival]:
    """One request every ``interval`` seconds, the first at ``interval``."""
    t = interval
    while t < length:
        yield Arrival(t, duration)
        t += interval


def poisson(
    per_hour: float, profile: Sequence[float], duration: float, length: float, *, start_hour: int, rng: random.Random
) -> Iterator[Arrival]:
    """Poisson arrivals at ``per_hour * profile[hour of day]``; ``start_hour`` is the hour of day at time 0.

    The rate is constant within each hour, so restarting the exponential draw at every hour is exact (the
    process is memoryless).
    """
    hour = 0
    while hour * HOUR < length:
        rate = per_hour * profile[(start_hour + hour) % len(profile)] / HOUR
        end = min((hour + 1) * HOUR, length)
        t = hour * HOUR
        while rate > 0:
            t += rng.expovariate(rate)
            if t >= end:
                break
            yield Arrival(t, duration)
        hour += 1


def from_csv(path: Path, start: datetime, length: float) -> Iterator[Arrival]:
    """Requests from a CSV with the header ``at,duration``: ``at`` in seconds from the start or RFC 3339,
    ``duration`` in seconds. Rows must be in time order. Raises ConfigError naming the bad line."""
    try:
        with path.open(encoding="utf-8", newline="") as file:
            rows = list(csv.DictReader(file))
    except OSError as e:
        raise ConfigError(f"demand csv {path}: {e.strerror}") from None
    arrivals = [_row(path, number, row, start) for number, row in enumerate(rows, start=2)]
    for number, (before, after) in enumerate(itertools.pairwise(arrivals), start=3):
        if after.at < before.at:
            raise ConfigError(f"demand csv {path} line {number}: rows must be in time order")
    return (a for a in arrivals if 0 <= a.at < length)


def _row(path: Path, number: int, row: dict[str, str], start: datetime) -> Arrival:
    try:
        at_text, duration = row["at"].strip(), float(row["duration"])
        at = (datetime.fromisoformat(at_text) - start).total_seconds() if "T" in at_text else float(at_text)
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise ConfigError(f"demand csv {path} line {number}: expected columns at,duration ({e})") from None
    if duration < 0:
        raise ConfigError(f"demand csv {path} line {number}: duration must not be negative")
    return Arrival(at, duration)
