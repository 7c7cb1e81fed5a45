"""The control plane's writer of pool history (``spotgate report``'s input), kept apart from its decisions.

Per process it remembers what it last wrote of each pool (``history.recording.Written``) so a round writes
only what changed. History is optional (DESIGN §2.3): a failed write is logged and forgotten, and the view is
reset so the next round writes the pool whole again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime

from spotgate.domain import Action, InboundEvent, Observed, StartInstance
from spotgate.errors import SpotgateError
from spotgate.history.recording import Written, round_records
from spotgate.ports import RouteStore

log = logging.getLogger("spotgate.history")


class HistoryRecorder:
    def __init__(self, store: RouteStore) -> None:
        self._store = store
        self._written: dict[str, Written] = {}
        self._lock = threading.Lock()  # a fleet tick runs pools in threads; one pool's rounds are serialised

    def record_round(
        self,
        pool: str,
        now: datetime,
        *,
        event: InboundEvent | None,
        observed: Observed | None,
        applied: Sequence[Action],
        stockouts: Sequence[StartInstance],
    ) -> None:
        with self._lock:
            written = self._written.get(pool, Written())
        records, after = round_records(
            pool, now, written, event=event, observed=observed, applied=applied, stockouts=stockouts
        )
        try:
            if records:
                self._store.append_history(records)
        except SpotgateError as e:
            log.warning("history not written: %s", e, extra={"pool": pool})
            after = Written()
        with self._lock:
            self._written[pool] = after
