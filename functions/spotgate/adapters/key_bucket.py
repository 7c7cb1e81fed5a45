"""A key's shared rate bucket, as both stores keep it: the arithmetic of one take, in one place.

The stored state is ``(tokens, updated)``; a take refills ``rate`` tokens per second since ``updated`` (up to
``burst``), then hands out as many whole tokens as asked for and available. Both stores run this inside
their own transaction, so concurrent takes from several gateway instances never hand out a token twice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def refill_and_take(
    stored: Sequence[float] | None, rate: float, burst: float, want: int, now: float
) -> tuple[float, int]:
    """``(tokens left, tokens taken)`` for stored ``(tokens, updated)`` (None: a full bucket)."""
    tokens, updated = (burst, now) if stored is None else (float(stored[0]), float(stored[1]))
    tokens = min(burst, tokens + max(0.0, now - updated) * rate)
    taken = max(0, min(want, math.floor(tokens)))
    return tokens - taken, taken
