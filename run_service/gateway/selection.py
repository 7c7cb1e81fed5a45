"""Which backend of a pool gets the next request: least in flight, skipping recently failing ones.

In-flight counts are kept here, per gateway worker, because they are exact and immediate, whereas engine
metrics scraped from backends are seconds old. A backend that refuses or resets connections
``eject_after`` times in a row is *ejected* (passive health checking) for ``eject_for`` seconds, so requests
stop paying a connect failure each until the control plane marks the VM down. Ties go to a random backend
so that several gateway workers do not all pile onto the first route.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Collection, Sequence

from spotgate.domain import Route


class Balancer:
    """In-flight counters and passive ejection for every backend this worker talks to."""

    def __init__(
        self,
        *,
        eject_after: int,
        eject_for: float,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._eject_after = eject_after
        self._eject_for = eject_for
        self._monotonic = monotonic
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._inflight: dict[str, int] = {}
        self._failures: dict[str, int] = {}
        self._ejected_until: dict[str, float] = {}

    def pick(self, routes: Sequence[Route], exclude: Collection[str], *, ejected: bool = False) -> Route | None:
        """The least busy route not in ``exclude``: healthy ones, or with ``ejected`` only ejected ones."""
        now = self._monotonic()
        with self._lock:
            candidates = [r for r in routes if r.key not in exclude and self._is_ejected(r.key, now) == ejected]
            if not candidates:
                return None
            fewest = min(self._inflight.get(r.key, 0) for r in candidates)
            best = [r for r in candidates if self._inflight.get(r.key, 0) == fewest]
        return best[0] if len(best) == 1 else self._rng.choice(best)

    def _is_ejected(self, key: str, now: float) -> bool:
        return self._ejected_until.get(key, 0.0) > now

    def begin(self, route: Route) -> None:
        with self._lock:
            self._inflight[route.key] = self._inflight.get(route.key, 0) + 1

    def end(self, route: Route) -> None:
        with self._lock:
            left = self._inflight.get(route.key, 1) - 1
            if left > 0:
                self._inflight[route.key] = left
            else:
                self._inflight.pop(route.key, None)

    def connect_failed(self, route: Route) -> None:
        """Count a failure before the first response byte; eject after ``eject_after`` in a row."""
        with self._lock:
            failures = self._failures.get(route.key, 0) + 1
            self._failures[route.key] = failures
            if failures >= self._eject_after:
                self._ejected_until[route.key] = self._monotonic() + self._eject_for
                self._failures[route.key] = 0

    def answered(self, route: Route) -> None:
        """The backend sent a response: it is healthy again."""
        if route.key in self._failures or route.key in self._ejected_until:
            with self._lock:
                self._failures.pop(route.key, None)
                self._ejected_until.pop(route.key, None)

    def is_ejected(self, route: Route) -> bool:
        return self._is_ejected(route.key, self._monotonic())

    def inflight(self, route: Route) -> int:
        return self._inflight.get(route.key, 0)
