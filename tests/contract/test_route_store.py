"""The RouteStore contract: every adapter stores, merges, bounds and publishes changes the same way.

The ``store`` fixture (conftest) is parametrised over the adapters; a test here is a promise the control
plane, the gateway or the CLI relies on, whichever store a deployment uses.
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.domain import (
    Activity,
    BootPhase,
    FailureKind,
    GatewayActivity,
    Notice,
    NoticeKind,
    Override,
    OverrideKind,
    PoolState,
    Preemption,
    Progress,
    RouteState,
    StartFailure,
    Stockout,
)
from spotgate.errors import ConflictError, UnavailableError
from spotgate.ports import RouteStore, Snapshot, Subscription
from tests.contract.builders import T0, a_key, a_record, a_route, a_sample
from tests.contract.conftest import EVENTS_LIMIT
from tests.contract.lease_race import race_for_lease

TTL = timedelta(seconds=30)
WATCH_WAIT_SECONDS = 15.0


def a_full_pool_state(pool: str = "chat") -> PoolState:
    """Every field of PoolState set to a non-default value."""
    return PoolState(
        pool=pool,
        generation=0,
        notices={"chat-a": Notice(NoticeKind.READY, T0), "chat-b": Notice(NoticeKind.DRAINING, T0)},
        stockouts={"us-central1-b": T0 + timedelta(minutes=10)},
        zones_available=("us-central1-c", "us-central1-f"),
        preemptions=(Preemption("chat-b", "us-central1-b", T0),),
        stockout_history=(Stockout("chat-a", "us-central1-a", T0), Stockout("chat-b", "us-central1-a", T0)),
        override=Override(OverrideKind.SLEEP, until=T0 + timedelta(hours=8), at=T0),
        last_wake_at=T0,
        start_attempts={"chat-a": T0},
        spot_unavailable_since=T0,
        start_failures={"chat-b": StartFailure(FailureKind.RATE_LIMIT, T0, T0 + timedelta(seconds=15), 2, "429")},
        retiring={"chat-a": T0},
        progress={"chat-b": Progress(BootPhase.COPYING_WEIGHTS, T0)},
        gap_since=T0,
        gap_closed_at=T0 + timedelta(minutes=1),
        overflow_warm=True,
        updated_at=T0,
    )


# routes


def test_routes_upsert_by_key_list_filter_by_pool_and_delete(store: RouteStore) -> None:
    chat_a, chat_b, embed_a = a_route("chat-a"), a_route("chat-b"), a_route("embed-a", pool="embed")
    store.put_routes([chat_a, chat_b, embed_a])
    draining = replace(chat_a, state=RouteState.DRAINING, reason="preempted")
    store.put_routes([draining])

    assert sorted(store.list_routes(), key=lambda r: r.key) == [draining, chat_b, embed_a]
    assert sorted(store.list_routes("chat"), key=lambda r: r.key) == [draining, chat_b]

    store.delete_routes([chat_b.key, "chat.never-existed"])
    assert sorted(store.list_routes(), key=lambda r: r.key) == [draining, embed_a]
    assert store.list_routes("nobody") == []


# pool state


def test_pool_state_of_a_new_pool_is_fresh_with_generation_zero(store: RouteStore) -> None:
    assert store.get_pool_state("chat") == PoolState(pool="chat", generation=0)


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(a_full_pool_state(), id="realistic"),
        pytest.param(a_sample(PoolState, pool="chat", generation=0), id="every-field-from-type-hints"),
    ],
)
def test_commit_increments_generation_and_stores_every_field(store: RouteStore, state: PoolState) -> None:
    first = store.commit_pool_state(state, expected_generation=0)
    second = store.commit_pool_state(replace(first, overflow_warm=False, notices={}), expected_generation=1)

    assert first == replace(state, generation=1)
    assert store.get_pool_state("chat") == second
    assert second.generation == 2
    assert second.notices == {}, "a commit replaces nested maps, it does not merge into them"
    assert store.get_pool_state("embed").generation == 0


@pytest.mark.parametrize("expected", [pytest.param(0, id="stale"), pytest.param(2, id="ahead")])
def test_commit_with_a_wrong_generation_conflicts_and_keeps_the_stored_state(store: RouteStore, expected: int) -> None:
    committed = store.commit_pool_state(PoolState(pool="chat", overflow_warm=True), expected_generation=0)
    with pytest.raises(ConflictError):
        store.commit_pool_state(PoolState(pool="chat"), expected_generation=expected)
    assert store.get_pool_state("chat") == committed


def _drop_stored_field(store: RouteStore, request: pytest.FixtureRequest, pool: str, field: str) -> None:
    """Remove ``field`` from the stored PoolState document, as a writer from before the field would have left it."""
    if isinstance(store, SqliteStore):
        with sqlite3.connect(request.getfixturevalue("tmp_path") / "store.db") as db:
            (doc,) = db.execute("SELECT doc FROM pool_state WHERE pool = ?", (pool,)).fetchone()
            db.execute("UPDATE pool_state SET doc = ? WHERE pool = ?", (json.dumps(_without(doc, field)), pool))
        return
    prefix = request.getfixturevalue("firestore_prefix")
    ref = request.getfixturevalue("firestore_client").collection(f"{prefix}_pools").document(pool)
    state = {k: v for k, v in ref.get().to_dict()["state"].items() if k != field}
    ref.update({"state": state})  # the whole map: DELETE_FIELD on a nested path left the field in the emulator


def _without(doc: str, field: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(doc)
    del document[field]
    return document


def test_a_pool_state_stored_before_stockout_history_still_loads(
    store: RouteStore, request: pytest.FixtureRequest
) -> None:
    committed = store.commit_pool_state(a_full_pool_state(), expected_generation=0)
    _drop_stored_field(store, request, "chat", "stockout_history")

    loaded = store.get_pool_state("chat")
    assert loaded == replace(committed, stockout_history=())
    assert store.commit_pool_state(loaded, expected_generation=1).generation == 2


# lease


def test_lease_is_exclusive_reentrant_and_released_only_by_its_holder(store: RouteStore) -> None:
    assert store.acquire_lease("chat", "tick-1", T0, TTL)
    assert not store.acquire_lease("chat", "event-2", T0 + timedelta(seconds=1), TTL)
    assert store.acquire_lease("chat", "tick-1", T0 + timedelta(seconds=2), TTL)
    assert store.acquire_lease("embed", "event-2", T0, TTL), "leases are per pool"

    store.release_lease("chat", "event-2")
    assert not store.acquire_lease("chat", "event-2", T0 + timedelta(seconds=3), TTL)
    store.release_lease("chat", "tick-1")
    assert store.acquire_lease("chat", "event-2", T0 + timedelta(seconds=4), TTL)


def test_expired_lease_can_be_taken_and_renewal_extends_it(store: RouteStore) -> None:
    assert store.acquire_lease("chat", "crashed", T0, TTL)
    assert store.acquire_lease("chat", "crashed", T0 + timedelta(seconds=20), TTL)  # renew: now until +50 s
    assert not store.acquire_lease("chat", "next", T0 + timedelta(seconds=40), TTL)
    assert store.acquire_lease("chat", "next", T0 + timedelta(seconds=50), TTL)
    assert not store.acquire_lease("chat", "crashed", T0 + timedelta(seconds=51), TTL)


def test_lease_and_pool_state_do_not_overwrite_each_other(store: RouteStore) -> None:
    assert store.acquire_lease("chat", "tick-1", T0, TTL)
    assert store.get_pool_state("chat") == PoolState(pool="chat", generation=0)
    committed = store.commit_pool_state(a_full_pool_state(), expected_generation=0)
    assert not store.acquire_lease("chat", "event-2", T0, TTL), "the commit kept the lease"
    store.release_lease("chat", "tick-1")
    assert store.get_pool_state("chat") == committed, "the release kept the state"


@pytest.mark.parametrize("fresh_file", [pytest.param(True, id="fresh-file"), pytest.param(False, id="existing-file")])
def test_sqlite_lease_race_between_processes_has_exactly_one_winner(tmp_path: Path, fresh_file: bool) -> None:
    """A fresh file also races the schema creation, as when the functions and the gateway start together."""
    path = tmp_path / "race.db"
    if not fresh_file:
        existing = SqliteStore(path)
        existing.get_pool_state("chat")
        existing.close()
    ctx = multiprocessing.get_context("spawn")
    contenders = 3
    barrier, results = ctx.Barrier(contenders), ctx.Queue()
    procs = [
        ctx.Process(
            target=race_for_lease,
            args=(str(path), f"proc-{i}"),
            kwargs={"now": T0, "ttl": TTL, "barrier": barrier, "results": results},
        )
        for i in range(contenders)
    ]
    try:
        for proc in procs:
            proc.start()
        outcomes = dict(results.get(timeout=60) for _ in procs)
        for proc in procs:
            proc.join(timeout=30)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join()
    assert sorted(map(repr, outcomes.values())) == ["False"] * (contenders - 1) + ["True"]
    winner = next(holder for holder, won in outcomes.items() if won)
    after = SqliteStore(path)
    try:
        assert after.acquire_lease("chat", winner, T0, TTL)
        assert not after.acquire_lease("chat", "latecomer", T0, TTL)
    finally:
        after.close()


# activity


def test_activity_of_a_quiet_pool_is_empty(store: RouteStore) -> None:
    assert store.get_activity("chat", T0) == Activity(pool="chat")


def a_gateway_record(gateway: str, at: datetime, **fields: Any) -> GatewayActivity:
    return GatewayActivity(pool="chat", gateway=gateway, at=at, expires_at=at + timedelta(seconds=15), **fields)


def test_in_flight_is_summed_over_gateway_instances_not_overwritten(store: RouteStore) -> None:
    t1, t2 = T0 + timedelta(seconds=5), T0 + timedelta(seconds=9)
    for gateway in ("gw-1", "gw-2", "gw-3"):  # three instances, six in flight each, two VMs
        store.record_activity(
            a_gateway_record(gateway, t1, inflight=6, backend_inflight={"chat-a": 4, "chat-b": 2}, requests_total=10)
        )
    store.record_activity(a_gateway_record("gw-4", t2, last_request_at=t1, requests_total=1))  # idle, later
    activity = store.get_activity("chat", t2)
    assert activity.inflight == 18
    assert activity.backend_inflight == {"chat-a": 12, "chat-b": 6}
    assert activity.requests_total == 31
    assert activity.updated_at == t2
    assert store.get_activity("embed", t2) == Activity(pool="embed")


def test_a_record_is_replaced_whole_by_its_own_instance(store: RouteStore) -> None:
    t1, t2 = T0 + timedelta(seconds=5), T0 + timedelta(seconds=9)
    store.record_activity(a_gateway_record("gw-1", t1, inflight=3, backend_inflight={"chat-a": 3}, requests_total=3))
    store.record_activity(a_gateway_record("gw-1", t2, inflight=1, backend_inflight={"chat-a": 1}, requests_total=4))
    activity = store.get_activity("chat", t2)
    assert (activity.inflight, activity.backend_inflight, activity.requests_total) == (1, {"chat-a": 1}, 4)


def test_expired_records_stop_counting_in_flight_but_keep_their_times(store: RouteStore) -> None:
    finished = T0 + timedelta(seconds=2)
    store.record_activity(
        a_gateway_record(
            "gone",
            T0,
            inflight=5,
            backend_inflight={"chat-a": 5},
            last_request_at=T0,
            backend_last_request={"chat-a": T0},
            backend_last_finished={"chat-a": finished},
            requests_total=7,
        )
    )
    activity = store.get_activity("chat", T0 + timedelta(minutes=5))
    assert activity.inflight == 0
    assert activity.backend_inflight == {}
    assert activity.updated_at is None  # no live record: the planner reads the load as unknown
    assert activity.last_request_at == T0
    assert activity.backend_last_finished == {"chat-a": finished}
    assert activity.requests_total == 7


def test_times_take_the_newest_over_instances(store: RouteStore) -> None:
    t1, t2 = T0 + timedelta(seconds=5), T0 + timedelta(seconds=9)
    store.record_activity(
        a_gateway_record(
            "gw-1", t2, last_request_at=t2, backend_last_request={"chat-a": t2}, backend_last_finished={"chat-a": t1}
        )
    )
    store.record_activity(
        a_gateway_record(
            "gw-2",
            t1,
            last_request_at=t1,
            backend_last_request={"chat-a": t1, "chat-b": t1},
            backend_last_finished={"chat-a": t2},
        )
    )
    activity = store.get_activity("chat", t2)
    assert activity.last_request_at == t2
    assert activity.backend_last_request == {"chat-a": t2, "chat-b": t1}
    assert activity.backend_last_finished == {"chat-a": t2}


# audit trail


def test_events_come_newest_first_filtered_and_limited(store: RouteStore) -> None:
    store.append_events([a_record("chat-a", T0), a_record("chat-c", T0 + timedelta(seconds=2))])
    store.append_events([a_record("chat-b", T0 + timedelta(seconds=1)), a_record("embed-a", T0, pool="embed")])

    assert [r.target for r in store.recent_events("chat")] == ["chat-c", "chat-b", "chat-a"]
    assert [r.target for r in store.recent_events(limit=2)] == ["chat-c", "chat-b"]
    assert store.recent_events("embed") == [a_record("embed-a", T0, pool="embed")]


def test_events_are_bounded_per_pool_dropping_the_oldest(store: RouteStore) -> None:
    store.append_events([a_record(f"old-{i}", T0 + timedelta(seconds=i)) for i in range(EVENTS_LIMIT)])
    store.append_events([a_record("embed-a", T0, pool="embed")])
    store.append_events([a_record("new", T0 + timedelta(minutes=1))])

    chat = store.recent_events("chat", limit=100)
    assert len(chat) == EVENTS_LIMIT
    assert chat[0].target == "new"
    assert "old-0" not in {r.target for r in chat}
    assert [r.target for r in store.recent_events("embed")] == ["embed-a"]


# keys


def test_keys_are_stored_listed_and_revoked_by_update(store: RouteStore) -> None:
    one, two = a_key("k-one"), a_key("k-two", pools=(), expires_at=T0 + timedelta(days=30))
    store.put_key(one)
    store.put_key(two)
    store.put_key(replace(one, disabled=True))

    assert sorted(store.list_keys(), key=lambda k: k.key_id) == [replace(one, disabled=True), two]


# change feed


class Deliveries:
    """Collects ``on_change`` calls and waits (bounded) for one that satisfies a condition."""

    def __init__(self) -> None:
        self.calls: queue.Queue[Snapshot] = queue.Queue()

    def __call__(self, snapshot: Snapshot) -> None:
        self.calls.put(snapshot)

    def wait_for(self, condition: Callable[[Snapshot], bool]) -> Snapshot:
        deadline = datetime.now(UTC) + timedelta(seconds=WATCH_WAIT_SECONDS)
        while (left := (deadline - datetime.now(UTC)).total_seconds()) > 0:
            try:
                snapshot = self.calls.get(timeout=left)
            except queue.Empty:
                break
            if condition(snapshot):
                return snapshot
        raise AssertionError(f"no snapshot matched within {WATCH_WAIT_SECONDS} s")


@contextmanager
def watching(store: RouteStore, on_change: Callable[[Snapshot], None]) -> Iterator[Subscription]:
    subscription = store.watch(on_change)
    try:
        yield subscription
    finally:
        subscription.close()


def test_watch_delivers_the_current_table_at_once(store: RouteStore) -> None:
    store.put_routes([a_route()])
    store.put_key(a_key())
    deliveries = Deliveries()
    with watching(store, deliveries):
        first = deliveries.calls.get_nowait()  # delivered before watch() returned
    assert first.routes == (a_route(),)
    assert first.keys == (a_key(),)
    assert first == replace(store.snapshot(), version=first.version)


def test_watch_delivers_route_and_key_changes_with_growing_versions(store: RouteStore) -> None:
    deliveries = Deliveries()
    with watching(store, deliveries):
        initial = deliveries.wait_for(lambda s: True)
        store.put_routes([a_route()])
        routed = deliveries.wait_for(lambda s: s.routes == (a_route(),))
        store.put_key(a_key(disabled=True))
        keyed = deliveries.wait_for(lambda s: s.keys == (a_key(disabled=True),))
        store.delete_routes([a_route().key])
        emptied = deliveries.wait_for(lambda s: s.routes == ())
    assert initial.version < routed.version < keyed.version < emptied.version
    assert emptied.keys == (a_key(disabled=True),)


def test_closed_watch_delivers_nothing_more(store: RouteStore) -> None:
    closed, witness = Deliveries(), Deliveries()
    with watching(store, closed):
        closed.wait_for(lambda s: True)
    with watching(store, witness):
        store.put_routes([a_route()])
        # Once a live watcher has seen the change, a closed one that still listened would have too.
        witness.wait_for(lambda s: s.routes == (a_route(),))
    assert closed.calls.empty()


def test_watch_may_be_closed_from_its_own_callback(store: RouteStore) -> None:
    deliveries = Deliveries()
    subscriptions: list[Subscription] = []

    def close_on_first_route(snapshot: Snapshot) -> None:
        deliveries(snapshot)
        if snapshot.routes:
            subscriptions[0].close()

    with watching(store, close_on_first_route) as subscription:
        subscriptions.append(subscription)
        store.put_routes([a_route()])
        deliveries.wait_for(lambda s: bool(s.routes))
        witness = Deliveries()
        with watching(store, witness):
            store.put_routes([a_route("chat-b")])
            witness.wait_for(lambda s: len(s.routes) == 2)
    assert deliveries.calls.empty(), "no delivery after close() returned inside the callback"


# an unreachable store


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda s: s.list_routes(), id="list_routes"),
        pytest.param(lambda s: s.put_routes([a_route()]), id="put_routes"),
        pytest.param(lambda s: s.get_pool_state("chat"), id="get_pool_state"),
        pytest.param(lambda s: s.get_activity("chat", T0), id="get_activity"),
        pytest.param(lambda s: s.recent_events("chat"), id="recent_events"),
        pytest.param(lambda s: s.put_key(a_key()), id="put_key"),
        pytest.param(lambda s: s.watch(Deliveries()), id="watch"),
    ],
)
def test_an_unreachable_store_raises_unavailable(
    unreachable_store: RouteStore, call: Callable[[RouteStore], object]
) -> None:
    with pytest.raises(UnavailableError):
        call(unreachable_store)


def test_a_failing_change_handler_does_not_stop_the_feed(store: RouteStore, caplog: pytest.LogCaptureFixture) -> None:
    deliveries = Deliveries()

    def fail_on_routes(snapshot: Snapshot) -> None:
        deliveries(snapshot)
        if snapshot.routes and not snapshot.keys:
            raise RuntimeError("gateway bug while applying routes")

    with watching(store, fail_on_routes):
        store.put_routes([a_route()])
        deliveries.wait_for(lambda s: bool(s.routes))
        store.put_key(a_key())
        assert deliveries.wait_for(lambda s: bool(s.keys)).routes == (a_route(),)
    assert "change handler failed" in caplog.text
