"""Half-open time spans ``[start, end)`` in seconds and the set algebra the chaos verdict is written in.

Why a module of its own: every criterion of a chaos run is a question about overlapping stretches of time
("demand, and capacity, and no ready backend"), and phrasing them as unions, intersections and differences of
span lists keeps each criterion a few readable lines instead of a hand-rolled sweep. Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class Span:
    """``[start, end)`` in seconds; empty when ``end <= start``."""

    start: float
    end: float

    @property
    def length(self) -> float:
        return max(0.0, self.end - self.start)


Spans = tuple[Span, ...]


def union(spans: Iterable[Span]) -> Spans:
    """The spans merged into sorted, disjoint, non-empty spans (touching spans join)."""
    merged: list[Span] = []
    for span in sorted(s for s in spans if s.length > 0):
        if merged and span.start <= merged[-1].end:
            merged[-1] = Span(merged[-1].start, max(merged[-1].end, span.end))
        else:
            merged.append(span)
    return tuple(merged)


def intersect(a: Sequence[Span], b: Sequence[Span]) -> Spans:
    """Where both ``a`` and ``b`` hold."""
    left, right = union(a), union(b)
    out: list[Span] = []
    i = j = 0
    while i < len(left) and j < len(right):
        start, end = max(left[i].start, right[j].start), min(left[i].end, right[j].end)
        if end > start:
            out.append(Span(start, end))
        if left[i].end < right[j].end:
            i += 1
        else:
            j += 1
    return tuple(out)


def subtract(a: Sequence[Span], b: Sequence[Span]) -> Spans:
    """Where ``a`` holds and ``b`` does not."""
    out: list[Span] = []
    cuts = union(b)
    for span in union(a):
        start = span.start
        for cut in cuts:
            if cut.end <= start or cut.start >= span.end:
                continue
            if cut.start > start:
                out.append(Span(start, cut.start))
            start = max(start, cut.end)
        if span.end > start:
            out.append(Span(start, span.end))
    return tuple(out)


def clip(spans: Sequence[Span], within: Span) -> Spans:
    """``spans`` cut to ``within``."""
    return intersect(spans, (within,))


def total(spans: Iterable[Span]) -> float:
    """Seconds covered (overlaps counted once)."""
    return sum(s.length for s in union(spans))


def count_at(spans: Iterable[Span], at: float) -> int:
    """How many of ``spans`` (overlaps counted separately) hold at ``at``."""
    return sum(1 for s in spans if s.start <= at < s.end)
