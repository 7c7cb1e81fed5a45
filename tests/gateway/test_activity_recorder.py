"""Each gateway instance writes its own activity record; the store sums them (issue 9, defects 5 and 7).

Driven with a settable clock and the real SQLite store, flushing by hand: what the control plane reads
after the flushes of several instances.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.activity import ActivityRecorder
from spotgate.adapters.sqlite_store import SqliteStore

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
FLUSH = timedelta(seconds=5)


class SetClock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime:
        return self.at


def a_recorder(store: SqliteStore, clock: SetClock, gateway: str) -> ActivityRecorder:
    return ActivityRecorder(store, clock, FLUSH, lambda _ok: None, gateway_id=gateway)


def test_in_flight_adds_up_over_gateway_instances_and_an_idle_one_adds_zero(store: SqliteStore) -> None:
    clock = SetClock()
    busy = [a_recorder(store, clock, f"gw-{i}") for i in range(3)]
    for recorder in busy:
        for _ in range(6):
            recorder.started("chat", "chat-a-1")
        recorder.flush()
    idle = a_recorder(store, clock, "gw-idle")
    idle.arrived("chat")
    idle.finished("chat")  # a request held and answered from overflow: nothing in flight now
    clock.at += timedelta(seconds=1)
    idle.flush()  # flushes last: must not replace the sum with its zero
    activity = store.get_activity("chat", clock.at)
    assert activity.inflight == 18
    assert activity.backend_inflight == {"chat-a-1": 18}


def test_a_steady_long_stream_stays_visible_though_no_count_changes(store: SqliteStore) -> None:
    clock = SetClock()
    recorder = a_recorder(store, clock, "gw-1")
    recorder.started("chat", "chat-a-1")
    recorder.flush()
    for _ in range(18):  # a 90-second stream: nothing changes, the flusher runs every 5 s
        clock.at += FLUSH
        recorder.flush()
    activity = store.get_activity("chat", clock.at)
    assert activity.backend_inflight == {"chat-a-1": 1}
    assert activity.updated_at == clock.at


def test_the_end_of_a_request_is_recorded_per_vm(store: SqliteStore) -> None:
    clock = SetClock()
    recorder = a_recorder(store, clock, "gw-1")
    recorder.started("chat", "chat-a-1")
    recorder.started("chat", "chat-b-1")
    clock.at += timedelta(seconds=90)
    recorder.finished("chat", "chat-a-1")
    recorder.flush()
    activity = store.get_activity("chat", clock.at)
    assert activity.backend_inflight == {"chat-b-1": 1}
    assert activity.backend_last_finished == {"chat-a-1": clock.at}
    assert activity.backend_last_request == {"chat-a-1": T0, "chat-b-1": T0}


def test_a_vanished_instance_stops_counting_after_its_record_expires(store: SqliteStore) -> None:
    clock = SetClock()
    recorder = a_recorder(store, clock, "gw-crashed")
    recorder.started("chat", "chat-a-1")
    recorder.flush()
    assert store.get_activity("chat", T0 + timedelta(seconds=10)).inflight == 1
    assert store.get_activity("chat", T0 + timedelta(minutes=2)).inflight == 0
