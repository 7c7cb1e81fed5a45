"""``wake`` messages: tell the control plane that a pool has demand but no ready VM.

Publishing happens on a background thread, never on the request path, so a slow or failing Pub/Sub cannot
delay a request. Wakes are debounced per pool (``debounce``): the control plane reconciles the whole pool on
one message, so a burst of held requests needs one publish, not one each.
"""

from __future__ import annotations

import logging
import queue
import threading
from datetime import datetime, timedelta

from spotgate.errors import SpotgateError
from spotgate.ports import Clock, Publisher

log = logging.getLogger(__name__)


class WakeNotifier:
    def __init__(self, publisher: Publisher, topic: str, clock: Clock, debounce: timedelta) -> None:
        self._publisher = publisher
        self._topic = topic
        self._clock = clock
        self._debounce = debounce
        self._last: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[dict[str, object] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gateway-wake", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def wake(self, pool: str) -> None:
        """Queue a wake for ``pool`` unless one was queued within the debounce window."""
        now = self._clock.now()
        with self._lock:
            last = self._last.get(pool)
            if last is not None and now - last < self._debounce:
                return
            self._last[pool] = now
        at = now.isoformat().replace("+00:00", "Z")
        self._queue.put({"v": 1, "kind": "wake", "pool": pool, "at": at})

    def _run(self) -> None:
        while (message := self._queue.get()) is not None:
            try:
                self._publisher.publish(self._topic, message)
                log.info("published wake", extra={"pool": message["pool"]})
            except SpotgateError as e:
                log.warning("wake publish failed", extra={"pool": message["pool"], "error": str(e)})
