"""Contract for pruning the gateway's per-instance records (``RouteStore.prune_expired``), held by both stores.

Every gateway process writes its own activity and in-flight records under a new id; the fleet tick deletes
those expired longer than ``RETENTION``. A record's presence is read back at a time when it was still live
(``get_activity``/``key_inflight`` at an earlier ``now``), since expired records add no gauge.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from spotgate.adapters.activity_merge import RETENTION
from spotgate.adapters.firestore_store import FirestoreStore
from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.domain import GatewayActivity
from spotgate.ports import RouteStore
from tests.contract.builders import T0

NOW = T0 + timedelta(days=3)
DEAD = NOW - RETENTION - timedelta(seconds=1)  # expired just over the margin: due for pruning
RECENT = NOW - RETENTION + timedelta(seconds=1)  # expired, but not yet by the margin: kept
LIVE = NOW + timedelta(seconds=15)
THREADS = 2


def an_activity(gateway: str, expires_at: datetime, **fields: object) -> GatewayActivity:
    at = expires_at - timedelta(seconds=15)
    return GatewayActivity(pool="chat", gateway=gateway, at=at, expires_at=expires_at, **fields)  # type: ignore[arg-type]


def inflight_of(store: RouteStore, gateway: str, expires_at: datetime) -> int:
    """The in-flight count ``gateway`` published for the pool while its record was live (0: record gone)."""
    return store.get_activity("chat", expires_at - timedelta(seconds=1)).backend_inflight.get(f"vm-{gateway}", 0)


def test_records_expired_past_the_margin_are_deleted_and_the_others_kept(store: RouteStore) -> None:
    records = {"dead": DEAD, "recent": RECENT, "live": LIVE}
    for gateway, expires_at in records.items():
        store.record_activity(an_activity(gateway, expires_at, backend_inflight={f"vm-{gateway}": 1}))
        store.put_key_inflight(gateway, {f"k-{gateway}": 1}, expires_at)
    assert store.prune_expired(NOW, limit=100) == 2  # the dead activity record and the dead in-flight one
    assert {g: inflight_of(store, g, at) for g, at in records.items()} == {"dead": 0, "recent": 1, "live": 1}
    kept = {g: store.key_inflight(at - timedelta(seconds=1), exclude="") for g, at in records.items()}
    assert kept == {"dead": {"k-live": 1, "k-recent": 1}, "recent": {"k-live": 1, "k-recent": 1}, "live": {"k-live": 1}}
    assert store.prune_expired(NOW, limit=100) == 0  # idempotent


def test_pruning_leaves_the_summed_activity_unchanged(store: RouteStore) -> None:
    newer, old = LIVE - timedelta(minutes=1), DEAD - timedelta(seconds=30)
    vm_times = {"backend_last_request": {"chat-a": newer}, "backend_last_finished": {"chat-a": newer}}
    live = an_activity("gw-1", LIVE, inflight=2, backend_inflight={"chat-a": 2}, last_request_at=newer, **vm_times)
    store.record_activity(live)
    store.record_activity(an_activity("gw-2", RECENT, last_request_at=RECENT - timedelta(minutes=5)))
    old_times = {"backend_last_request": {"chat-a": old}, "backend_last_finished": {"chat-a": old}}
    store.record_activity(an_activity("gone", DEAD, last_request_at=old, requests_total=4, **old_times))
    before = store.get_activity("chat", NOW)
    assert store.prune_expired(NOW, limit=100) == 1
    # ``requests_total`` counts over the records kept, so it drops by the pruned record's; the gauges and
    # the newest times, all the planner reads, are the same.
    assert store.get_activity("chat", NOW) == replace(before, requests_total=before.requests_total - 4)


def test_pruning_is_bounded_per_call(store: RouteStore) -> None:
    for i in range(5):
        store.record_activity(an_activity(f"gw-{i}", DEAD - timedelta(minutes=i)))
    for i in range(3):
        store.put_key_inflight(f"gw-{i}", {"k-1": 1}, DEAD - timedelta(minutes=i))
    assert [store.prune_expired(NOW, limit=3) for _ in range(4)] == [3, 3, 2, 0]


def test_two_pruners_at_once_both_succeed_and_keep_live_records(
    store: RouteStore, request: pytest.FixtureRequest
) -> None:
    _six_dead_instances_and_a_live_one(store)
    pruners = [_another_handle(store, request) for _ in range(THREADS)]
    _run_together([lambda s=s: s.prune_expired(NOW, limit=100) for s in pruners])  # type: ignore[misc]
    assert store.prune_expired(NOW, limit=100) == 0
    assert store.get_activity("chat", NOW).inflight == 1
    assert store.key_inflight(NOW, exclude="") == {"k-1": 1}


def test_two_sqlite_pruners_at_once_delete_each_record_once(tmp_path: Path) -> None:
    # SQLite only: the Node Firestore emulator does not isolate transactions (README, known limitations);
    # on Firestore the query inside the pruning transaction locks what it returns.
    stores = [SqliteStore(tmp_path / "store.db") for _ in range(THREADS + 1)]
    try:
        _six_dead_instances_and_a_live_one(stores[0])
        counts = _run_together([lambda s=s: s.prune_expired(NOW, limit=100) for s in stores[1:]])  # type: ignore[misc]
        assert sum(counts) == 12
    finally:
        for store in stores:
            store.close()


def _six_dead_instances_and_a_live_one(store: RouteStore) -> None:
    for i in range(6):
        store.record_activity(an_activity(f"gw-{i}", DEAD))
        store.put_key_inflight(f"gw-{i}", {"k-1": 1}, DEAD)
    store.record_activity(an_activity("live", LIVE, inflight=1))
    store.put_key_inflight("live", {"k-1": 1}, LIVE)


def _another_handle(store: RouteStore, request: pytest.FixtureRequest) -> RouteStore:
    """A second store object on the same data, as another control-plane worker would hold."""
    if isinstance(store, SqliteStore):
        other = SqliteStore(request.getfixturevalue("tmp_path") / "store.db")
        request.addfinalizer(other.close)
        return other
    assert isinstance(store, FirestoreStore)
    return FirestoreStore(
        request.getfixturevalue("firestore_client"), prefix=request.getfixturevalue("firestore_prefix")
    )


def _run_together(calls: list[Callable[[], int]]) -> list[int]:
    start = threading.Barrier(len(calls))
    results: list[int] = [0] * len(calls)
    failures: list[BaseException] = []

    def run(i: int) -> None:
        start.wait(timeout=10)
        try:
            results[i] = calls[i]()
        except BaseException as e:  # reported by the assertion below
            failures.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not failures, failures
    assert not any(thread.is_alive() for thread in threads)
    return results
