"""The document codec every store shares: lossless round trips, and documents that survive schema changes."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from spotgate.adapters.codec import from_document, to_document
from spotgate.domain import (
    Activity,
    ApiKey,
    BackendKind,
    ComputeEvent,
    ControlMessage,
    DecisionRecord,
    Envelope,
    Instance,
    InstanceStatus,
    Notice,
    NoticeKind,
    Override,
    PoolState,
    Preemption,
    ProvisioningModel,
    Route,
    RouteState,
)
from spotgate.errors import PermanentError
from tests.contract.builders import T0, a_key, a_route, a_sample
from tests.contract.test_route_store import a_full_pool_state


@dataclass(frozen=True, slots=True)
class Shapes:
    """Hint shapes the domain does not use yet but a future field might."""

    name: str
    wait: timedelta | None = None
    ratio: float = 0.0
    pair: tuple[str, int] = ("a", 0)
    by_kind: dict[NoticeKind, list[int]] = field(default_factory=dict)
    either: str | int = ""


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(a_full_pool_state(), id="pool-state-full"),
        pytest.param(PoolState(pool="empty"), id="pool-state-empty"),
        pytest.param(a_route(kind=BackendKind.OVERFLOW, state=RouteState.STARTING), id="route"),
        pytest.param(a_key(expires_at=T0, disabled=True), id="key"),
        pytest.param(Activity("chat", T0, 2, 7, {"chat-a": T0}, T0), id="activity"),
        pytest.param(DecisionRecord("chat", T0, "stop", "chat-b", "idle", 4), id="record"),
        pytest.param(
            Instance(
                "chat-a",
                "us-central1-a",
                InstanceStatus.RUNNING,
                ProvisioningModel.SPOT,
                "127.0.0.7",
                "123",
                {"spotgate-pool": "chat"},
                T0,
                None,
            ),
            id="instance",
        ),
        pytest.param(Shapes("s", timedelta(seconds=1.5), 2.5, ("b", 3), {NoticeKind.READY: [1, 2]}, 5), id="shapes"),
    ],
)
def test_round_trip_through_json_is_lossless(value: Any) -> None:
    document = json.loads(json.dumps(to_document(value)))
    assert from_document(type(value), document) == value


STORED_TYPES = [
    PoolState, Notice, Override, Preemption, Route, ApiKey, Activity, DecisionRecord,
    Instance, ComputeEvent, ControlMessage, Envelope, Shapes,
]  # fmt: skip


@pytest.mark.parametrize("cls", [pytest.param(c, id=c.__name__) for c in STORED_TYPES])
def test_every_field_of_every_domain_type_round_trips(cls: type[Any]) -> None:
    """Driven by type hints: a field someone adds later is checked here without editing this test."""
    value = a_sample(cls)
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            assert getattr(value, f.name) != f.default, f"the sample leaves {cls.__name__}.{f.name} at its default"
    assert from_document(cls, json.loads(json.dumps(to_document(value)))) == value


def test_times_are_fixed_width_rfc3339_utc_and_enums_are_values() -> None:
    local = datetime(2026, 3, 4, 7, 6, 7, tzinfo=timezone(timedelta(hours=2)))
    document = to_document(a_route(updated_at=local))
    assert document["updated_at"] == "2026-03-04T05:06:07.000000Z"
    assert document["state"] == "ready"
    assert from_document(Route, document).updated_at == local


def test_unknown_keys_are_ignored_and_missing_ones_take_defaults() -> None:
    newer = {**to_document(PoolState(pool="chat", generation=3)), "field_from_the_future": {"x": 1}}
    del newer["notices"]
    assert from_document(PoolState, newer) == PoolState(pool="chat", generation=3)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param({"generation": 1}, "missing required field 'pool'", id="missing-required"),
        pytest.param({"pool": "p", "generation": "1"}, r"PoolState\.generation", id="wrong-type"),
        pytest.param({"pool": "p", "generation": True}, "expected int", id="bool-is-not-int"),
        pytest.param({"pool": "p", "updated_at": "yesterday"}, "not an RFC3339 time", id="bad-time"),
        pytest.param({"pool": "p", "updated_at": "2026-03-04T05:06:07"}, "no UTC offset", id="naive-time"),
        pytest.param({"pool": "p", "notices": {"a": {"kind": "asleep", "at": None}}}, "NoticeKind", id="bad-enum"),
        pytest.param({"pool": "p", "zones_available": "us-central1-a"}, "expected an array", id="not-an-array"),
    ],
)
def test_documents_that_do_not_fit_raise_permanent_errors_naming_the_field(
    document: dict[str, Any], message: str
) -> None:
    with pytest.raises(PermanentError, match=message):
        from_document(PoolState, document)


def test_naive_datetimes_are_refused_on_write() -> None:
    with pytest.raises(PermanentError, match="naive"):
        to_document(a_route(updated_at=datetime(2026, 1, 1)))  # a naive time is the point of the test


def test_round_trip_keeps_utc_instants_equal_across_zones() -> None:
    key = a_key(created_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert from_document(ApiKey, to_document(key)).created_at.tzinfo is UTC
