"""Contract for the pool history (``spotgate report``'s input), held by both stores alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from spotgate.domain import HISTORY_RETENTION, HistoryKind, HistoryRecord, ServedCount
from spotgate.ports import RouteStore

T = datetime(2026, 11, 28, 20, tzinfo=UTC)


def _vm(name: str, at: datetime, status: str, pool: str = "chat") -> HistoryRecord:
    return HistoryRecord(pool, at, HistoryKind.VM, name, status, "us-central1-a", "SPOT", cause="start: below desired")


def test_history_round_trips_every_field_per_pool_and_since(store: RouteStore) -> None:
    first = _vm("chat-a-1", T, "PROVISIONING")
    same_instant = [
        _vm("chat-a-1", T + timedelta(seconds=5), "RUNNING"),
        _vm("chat-a-2", T + timedelta(seconds=5), "STAGING"),
    ]
    route = HistoryRecord("chat", T + timedelta(seconds=9), HistoryKind.ROUTE, "chat-a-1", "ready", backend_kind="vm")
    store.append_history([first])
    store.append_history([*same_instant, route, _vm("embed-1", T, "RUNNING", pool="embed")])
    assert store.list_history("chat", T) == [first, *same_instant, route]
    assert store.list_history("chat", T + timedelta(seconds=5)) == [*same_instant, route]
    assert store.list_history("embed", T) == [_vm("embed-1", T, "RUNNING", pool="embed")]
    assert store.list_history("chat", T + timedelta(minutes=1)) == []


def test_history_keeps_what_is_within_retention(store: RouteStore) -> None:
    old = _vm("chat-a-1", T - HISTORY_RETENTION - timedelta(days=1), "RUNNING")
    store.append_history([old])
    store.append_history([_vm("chat-a-1", T, "STOPPED")])
    # SQLite prunes on write; Firestore's TTL policy deletes later (the emulator does not sweep), so only
    # what is within retention is promised to be there.
    assert _vm("chat-a-1", T, "STOPPED") in store.list_history("chat", T - HISTORY_RETENTION)


def test_served_counts_add_up_per_pool_minute_and_kind(store: RouteStore) -> None:
    store.record_served(
        [ServedCount("chat", T + timedelta(seconds=10), "vm", 2), ServedCount("chat", T, "refused_503", 1)]
    )
    store.record_served([ServedCount("chat", T + timedelta(seconds=50), "vm", 3), ServedCount("embed", T, "vm", 7)])
    store.record_served([ServedCount("chat", T + timedelta(minutes=1, seconds=5), "overflow", 1)])
    assert store.list_served("chat", T + timedelta(seconds=30)) == [
        ServedCount("chat", T, "refused_503", 1),
        ServedCount("chat", T, "vm", 5),
        ServedCount("chat", T + timedelta(minutes=1), "overflow", 1),
    ]
    assert store.list_served("chat", T + timedelta(minutes=1)) == [
        ServedCount("chat", T + timedelta(minutes=1), "overflow", 1)
    ]
    assert store.list_served("embed", T) == [ServedCount("embed", T, "vm", 7)]
