"""Contract for per-key usage and the shared rate bucket, held by both stores alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from spotgate.domain import KeyUsage
from spotgate.ports import RouteStore

HOUR = datetime(2026, 11, 28, 20, tzinfo=UTC)


def test_usage_adds_up_per_key_pool_and_hour(store: RouteStore) -> None:
    store.record_usage([KeyUsage("k-1", "chat", HOUR, 1, 10, 5, 0.5), KeyUsage("k-1", "embed", HOUR, 1, 3, 0, 0.1)])
    store.record_usage([KeyUsage("k-1", "chat", HOUR, 2, 20, 7, 1.25)])
    store.record_usage([KeyUsage("k-2", "chat", HOUR + timedelta(hours=1), 1, 1, 1, 0.0)])
    assert store.list_usage(HOUR) == [
        KeyUsage("k-1", "chat", HOUR, 3, 30, 12, 1.75),
        KeyUsage("k-1", "embed", HOUR, 1, 3, 0, 0.1),
        KeyUsage("k-2", "chat", HOUR + timedelta(hours=1), 1, 1, 1, 0.0),
    ]
    assert [u.key_id for u in store.list_usage(HOUR + timedelta(hours=1))] == ["k-2"]


def test_the_shared_bucket_hands_out_each_token_once_and_refills_at_its_rate(store: RouteStore) -> None:
    t0 = HOUR
    assert store.take_key_tokens("k-1", rate=1.0, burst=3.0, want=2, now=t0) == 2
    assert store.take_key_tokens("k-1", rate=1.0, burst=3.0, want=2, now=t0) == 1
    assert store.take_key_tokens("k-1", rate=1.0, burst=3.0, want=2, now=t0) == 0
    assert store.take_key_tokens("k-1", rate=1.0, burst=3.0, want=5, now=t0 + timedelta(seconds=2)) == 2
    assert store.take_key_tokens("k-1", rate=1.0, burst=3.0, want=5, now=t0 + timedelta(seconds=60)) == 3  # burst caps
    assert store.take_key_tokens("k-2", rate=1.0, burst=3.0, want=1, now=t0) == 1  # buckets are per key


def test_key_inflight_sums_other_live_instances(store: RouteStore) -> None:
    live, dead = HOUR + timedelta(seconds=30), HOUR - timedelta(seconds=1)
    store.put_key_inflight("gw-a", {"k-1": 2, "k-2": 1}, live)
    store.put_key_inflight("gw-b", {"k-1": 3}, live)
    store.put_key_inflight("gw-c", {"k-1": 5}, dead)  # an instance that stopped flushing
    assert store.key_inflight(HOUR, exclude="gw-a") == {"k-1": 3}
    assert store.key_inflight(HOUR, exclude="gw-b") == {"k-1": 2, "k-2": 1}
    store.put_key_inflight("gw-b", {"k-1": 0}, live)  # replaced whole
    assert store.key_inflight(HOUR, exclude="gw-a") == {}
