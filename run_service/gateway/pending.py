"""A backend attempt running beside the request, so a streaming caller can get heartbeats while it waits.

Some engines send nothing, not even response headers, until the first token is ready. A streaming request
therefore opens its backend on a helper thread (a greenlet under gevent) and, if no answer has come within
one heartbeat, the gateway sends its own SSE headers and ``: keepalive`` comments until it does. If the
caller goes away first, the attempt is *abandoned*: whatever it opens later is closed by the helper itself,
so no upstream connection or in-flight count is leaked.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from gateway.errors import ApiError, bad_gateway

log = logging.getLogger(__name__)
T = TypeVar("T")


class Pending(Generic[T]):
    """Runs ``attempt`` now on a helper thread; ``orphan`` disposes of a result nobody will take."""

    def __init__(self, attempt: Callable[[], T | None], orphan: Callable[[T], None]) -> None:
        self._orphan = orphan
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._result: T | None = None
        self._error: ApiError | None = None
        self._taken = False
        self._abandoned = False
        threading.Thread(target=self._run, args=(attempt,), name="gateway-attempt", daemon=True).start()

    def _run(self, attempt: Callable[[], T | None]) -> None:
        result: T | None = None
        error: ApiError | None = None
        try:
            result = attempt()
        except ApiError as e:
            error = e
        except Exception:  # the helper's own outermost shell: never lose the caller's answer
            log.exception("backend attempt failed")
            error = bad_gateway("The backend attempt failed.")
        with self._lock:
            if self._abandoned:
                if result is not None:
                    self._orphan(result)
                return
            self._result, self._error = result, error
            self._done.set()

    def wait(self, timeout: float) -> bool:
        """True once the attempt has finished (within ``timeout`` seconds)."""
        return self._done.wait(timeout)

    def take(self) -> T | None:
        """The attempt's result (None: no backend answered). Raises its ApiError. Call after ``wait``."""
        with self._lock:
            self._taken = True
            if self._error is not None:
                raise self._error
            return self._result

    def abandon(self) -> None:
        """The caller is gone: dispose of the result now if it arrived untaken, or when it arrives."""
        with self._lock:
            self._abandoned = True
            untaken = self._result if self._done.is_set() and not self._taken else None
            self._taken = True
        if untaken is not None:
            self._orphan(untaken)
