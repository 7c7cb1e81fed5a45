"""Event parsing (every envelope form, payload kind and bad input) and folding events into pool state.

Fixtures are built here from the documented shapes (audit LogEntry via a log sink, Eventarc Pub/Sub
CloudEvents, spotgate control messages) with made-up projects, VMs and ids.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from cloudevents.http import from_http

from spotgate.core.events import parse_delivery, parse_timestamp, pool_of
from spotgate.core.fast_path import fast_path_routes
from spotgate.core.state_updates import FOREVER, apply_event
from spotgate.domain import (
    BootPhase,
    ComputeEvent,
    ComputeEventKind,
    ControlKind,
    ControlMessage,
    Envelope,
    Ignored,
    InboundEvent,
    Notice,
    NoticeKind,
    Override,
    OverrideKind,
    Preemption,
    RouteState,
)
from spotgate.fleet import FleetConfig, parse_fleet
from tests.unit.builders import NOW, a_pool_spec, a_route, a_state, ago, later

MAX_AGE = timedelta(minutes=30)
PROJECT = "tern-labs-prod"
PROJECT_NUMBER = "480011223344"
TOPIC_SOURCE = f"//pubsub.googleapis.com/projects/{PROJECT}/topics/spotgate-compute"
SYSTEM_EVENT_LOG = f"projects/{PROJECT}/logs/cloudaudit.googleapis.com%2Fsystem_event"


def a_log_entry(method: str = "compute.instances.preempted", **overrides: Any) -> dict[str, Any]:
    """An audit LogEntry as the log sink forwards it, for VM chat-b-1 in us-central1-b."""
    entry: dict[str, Any] = {
        "insertId": "-q7x2mf9kd1a",
        "logName": SYSTEM_EVENT_LOG,
        "operation": {"id": "systemevent-1795000000000-a1b2", "producer": method, "first": True, "last": True},
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "authenticationInfo": {"principalEmail": "system@google.com"},
            "methodName": method,
            "request": {"@type": f"type.googleapis.com/{method}"},
            "resourceName": f"projects/{PROJECT}/zones/us-central1-b/instances/chat-b-1",
            "serviceName": "compute.googleapis.com",
            "status": {"message": "Instance was preempted."},
        },
        "receiveTimestamp": "2026-11-23T11:58:01.408112733Z",
        "resource": {
            "type": "gce_instance",
            "labels": {"instance_id": "7310055512345678901", "project_id": PROJECT, "zone": "us-central1-b"},
        },
        "severity": "INFO",
        "timestamp": "2026-11-23T11:58:00.512345Z",
    }
    entry.update(overrides)
    return entry


def a_control(**fields: Any) -> dict[str, Any]:
    return {"v": 1, "at": "2026-11-23T11:59:30Z", **fields}


def b64(payload: object) -> str:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return base64.b64encode(raw).decode()


def a_message(payload: object, *, snake: bool = False, attributes: dict[str, str] | None = None) -> dict[str, Any]:
    """A Pub/Sub message as Eventarc renders it; ``snake`` uses the ``message_id``/``publish_time`` spelling."""
    message: dict[str, Any] = {"data": b64(payload)}
    message["message_id" if snake else "messageId"] = "8800112233"
    message["publish_time" if snake else "publishTime"] = "2026-11-23T11:58:02.250Z"
    if attributes is not None:
        message["attributes"] = attributes
    return message


def ce_attributes(event_id: str = "8800112233") -> dict[str, Any]:
    return {
        "id": event_id,
        "source": TOPIC_SOURCE,
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "specversion": "1.0",
        "time": "2026-11-23T11:58:02.250Z",
    }


def deliver(payload: object, **message_options: Any) -> InboundEvent:
    """A binary-mode Eventarc delivery, decoded by the real cloudevents library, then parsed."""
    body = {"message": a_message(payload, **message_options), "subscription": "projects/p/subscriptions/eventarc-s"}
    headers = {f"ce-{k}": v for k, v in ce_attributes().items()} | {"content-type": "application/json"}
    event = from_http(headers, json.dumps(body))
    return parse_delivery(event.get_attributes(), event.data, now=NOW, max_age=MAX_AGE)


def parse(data: object, attributes: dict[str, Any] | None = None) -> InboundEvent:
    return parse_delivery(ce_attributes() if attributes is None else attributes, data, now=NOW, max_age=MAX_AGE)


# ---- audit log entries ---------------------------------------------------------------------------------------


def test_binary_preemption_delivery_becomes_a_compute_event() -> None:
    event = deliver(a_log_entry(), attributes={"logging.googleapis.com/timestamp": "2026-11-23T11:58:00.512345Z"})
    assert event == ComputeEvent(
        kind=ComputeEventKind.PREEMPTED,
        project=PROJECT,
        zone="us-central1-b",
        instance="chat-b-1",
        at=ago(minutes=1, seconds=59.487655),
        instance_id="7310055512345678901",
        envelope=Envelope(
            event_id="8800112233",
            source=TOPIC_SOURCE,
            published_at=ago(minutes=1, seconds=57.75),
            attributes={"logging.googleapis.com/timestamp": "2026-11-23T11:58:00.512345Z"},
        ),
    )


@pytest.mark.parametrize("kind", list(ComputeEventKind), ids=lambda k: k.value.rsplit(".", 1)[-1])
def test_each_handled_system_event_method(kind: ComputeEventKind) -> None:
    event = deliver(a_log_entry(kind.value))
    assert isinstance(event, ComputeEvent)
    assert (event.kind, event.instance, event.zone) == (kind, "chat-b-1", "us-central1-b")


def test_status_message_is_not_needed() -> None:
    entry = a_log_entry()
    entry["protoPayload"]["status"] = {}
    assert isinstance(deliver(entry), ComputeEvent)


def test_project_number_in_resource_name_takes_the_project_id_from_the_label() -> None:
    entry = a_log_entry()
    entry["protoPayload"]["resourceName"] = f"projects/{PROJECT_NUMBER}/zones/us-central1-b/instances/chat-b-1"
    event = deliver(entry)
    assert isinstance(event, ComputeEvent)
    assert event.project == PROJECT


@pytest.mark.parametrize("snake", [False, True], ids=["camelCase", "snake_case"])
def test_both_pubsub_field_spellings(snake: bool) -> None:
    body = {"message": a_message(a_log_entry(), snake=snake)}
    event = parse(body, attributes={})
    assert event.envelope == Envelope("8800112233", "", ago(minutes=1, seconds=57.75), {})


@pytest.mark.parametrize("encode", [json.dumps, lambda b: json.dumps(b).encode()], ids=["str", "bytes"])
def test_data_given_as_json_text(encode: Any) -> None:
    event = parse(encode({"message": a_message(a_log_entry())}))
    assert isinstance(event, ComputeEvent)


def test_structured_cloudevent() -> None:
    body = {
        **ce_attributes(),
        "datacontenttype": "application/json",
        "data": {"message": a_message(a_control(kind="tick"))},
    }
    event = from_http({"content-type": "application/cloudevents+json"}, json.dumps(body))
    parsed = parse_delivery(event.get_attributes(), event.data, now=NOW, max_age=MAX_AGE)
    assert parsed == ControlMessage(ControlKind.TICK, ago(seconds=30), envelope=parsed.envelope)
    assert parsed.envelope is not None
    assert parsed.envelope.event_id == "8800112233"


def test_converted_raw_push_without_subscription_or_ids() -> None:
    message = {
        "@type": "type.googleapis.com/google.pubsub.v1.PubsubMessage",
        "data": b64(a_log_entry()),
        "attributes": {"logging.googleapis.com/timestamp": "2026-11-23T11:58:00.512345Z"},
    }
    attributes = {"id": "conv-1", "source": TOPIC_SOURCE, "time": "2026-11-23T11:58:03Z"}
    event = parse({"message": message}, attributes)
    assert isinstance(event, ComputeEvent)
    assert event.envelope == Envelope(
        "conv-1",
        TOPIC_SOURCE,
        ago(minutes=1, seconds=57),
        {"logging.googleapis.com/timestamp": "2026-11-23T11:58:00.512345Z"},
    )


# ---- control messages ----------------------------------------------------------------------------------------

CONTROL_CASES = [
    pytest.param({"kind": "tick"}, ControlMessage(ControlKind.TICK, ago(seconds=30)), id="tick"),
    pytest.param(
        {"kind": "tick", "pool": "chat"},
        ControlMessage(ControlKind.TICK, ago(seconds=30), pool="chat"),
        id="tick_one_pool",
    ),
    pytest.param(
        {"kind": "ready", "pool": "chat", "instance": "chat-a-1", "zone": "us-central1-a"},
        ControlMessage(ControlKind.READY, ago(seconds=30), "chat", "chat-a-1", "us-central1-a"),
        id="ready",
    ),
    pytest.param(
        {"kind": "draining", "instance": "chat-a-1"},
        ControlMessage(ControlKind.DRAINING, ago(seconds=30), instance="chat-a-1"),
        id="draining",
    ),
    pytest.param(
        {"kind": "wake", "pool": "chat"}, ControlMessage(ControlKind.WAKE, ago(seconds=30), "chat"), id="gateway_wake"
    ),
    pytest.param(
        {"kind": "wake", "pool": "chat", "until": "2026-11-23T18:00:00+01:00"},
        ControlMessage(ControlKind.WAKE, ago(seconds=30), "chat", until=later(hours=5)),
        id="wake_override",
    ),
    pytest.param(
        {"kind": "sleep", "pool": "chat", "until": "2026-11-24T07:00:00Z"},
        ControlMessage(ControlKind.SLEEP, ago(seconds=30), "chat", until=later(hours=19)),
        id="sleep_override",
    ),
    pytest.param(
        {"kind": "sleep", "pool": "chat"},
        ControlMessage(ControlKind.SLEEP, ago(seconds=30), "chat"),
        id="sleep_open_ended",
    ),
    pytest.param(
        {
            "kind": "progress",
            "phase": "copying_weights",
            "pool": "chat",
            "instance": "chat-a-1",
            "zone": "us-central1-a",
        },
        ControlMessage(
            ControlKind.PROGRESS, ago(seconds=30), "chat", "chat-a-1", "us-central1-a", phase=BootPhase.COPYING_WEIGHTS
        ),
        id="boot_progress",
    ),
]


@pytest.mark.parametrize(("fields", "expected"), CONTROL_CASES)
def test_control_messages(fields: dict[str, Any], expected: ControlMessage) -> None:
    event = deliver(a_control(**fields))
    assert isinstance(event, ControlMessage)
    assert event == ControlMessage(**{**_fields(expected), "envelope": event.envelope})


def _fields(message: ControlMessage) -> dict[str, Any]:
    return {name: getattr(message, name) for name in ControlMessage.__slots__}


def test_scheduler_tick_without_at_uses_the_publish_time() -> None:
    event = deliver({"v": 1, "kind": "tick"})
    assert isinstance(event, ControlMessage)
    assert event.at == ago(minutes=1, seconds=57.75)


# ---- unusable input is ignored with a reason, never raised ---------------------------------------------------


def _entry_with(path: str, value: Any) -> dict[str, Any]:
    entry = a_log_entry()
    *parents, leaf = path.split(".")
    node = entry
    for key in parents:
        node = node[key]
    if value is None:
        del node[leaf]
    else:
        node[leaf] = value
    return entry


IGNORED_CASES = [
    pytest.param(b"{not json", "not JSON", id="data_not_json"),
    pytest.param(b"\xff\xfe", "not JSON", id="data_not_utf8"),
    pytest.param([1, 2], "not a JSON object", id="data_is_a_list"),
    pytest.param({"subscription": "s"}, "no Pub/Sub 'message'", id="no_message"),
    pytest.param({"message": {"messageId": "1"}}, "has no data", id="message_without_data"),
    pytest.param({"message": {"data": 42}}, "not base64 text", id="data_not_text"),
    pytest.param({"message": {"data": "%%%not-base64"}}, "not base64 JSON", id="bad_base64"),
    pytest.param({"message": {"data": b64(b"hello world")}}, "not base64 JSON", id="base64_of_text"),
    pytest.param({"message": {"data": b64([1])}}, "not a JSON object", id="payload_is_a_list"),
    pytest.param({"message": {"data": b64({"hello": "x"})}}, "neither an audit LogEntry", id="unknown_payload"),
    pytest.param(
        {
            "message": {
                "data": b64(
                    a_log_entry(
                        "v1.compute.instances.stop",
                        logName=f"projects/{PROJECT}/logs/cloudaudit.googleapis.com%2Factivity",
                    )
                )
            }
        },
        "not a system_event audit log",
        id="activity_log_stop",
    ),
    pytest.param(
        {"message": {"data": b64(a_log_entry("ScheduledVMs"))}},
        "ScheduledVMs is not a handled",
        id="scheduled_vms_method",
    ),
    pytest.param(
        {"message": {"data": b64(a_log_entry("compute.instances.migrateOnHostMaintenance"))}},
        "not a handled system event",
        id="live_migration_method",
    ),
    pytest.param({"message": {"data": b64(_entry_with("resource.type", "gce_disk"))}}, "gce_disk", id="other_resource"),
    pytest.param(
        {"message": {"data": b64(_entry_with("protoPayload.resourceName", "projects/p/instances/x"))}},
        "is not projects/*/zones/*/instances/*",
        id="bad_resource_name",
    ),
    pytest.param(
        {"message": {"data": b64(_entry_with("resource.labels.zone", "us-central1-f"))}},
        "disagrees with resource label zone",
        id="zone_mismatch",
    ),
    pytest.param(
        {"message": {"data": b64(_entry_with("resource.labels.project_id", "someone-else"))}},
        "disagrees with resource label project_id",
        id="project_mismatch",
    ),
    pytest.param({"message": {"data": b64(_entry_with("timestamp", None))}}, "no valid timestamp", id="no_timestamp"),
    pytest.param(
        {"message": {"data": b64(_entry_with("timestamp", "yesterday"))}}, "no valid timestamp", id="bad_timestamp"
    ),
    pytest.param(
        {"message": {"data": b64({"kind": "tick"})}}, "version None is not supported", id="control_no_version"
    ),
    pytest.param({"message": {"data": b64(a_control(v=2, kind="tick"))}}, "version 2", id="control_future_version"),
    pytest.param({"message": {"data": b64(a_control(v=True, kind="tick"))}}, "version True", id="control_bool_version"),
    pytest.param({"message": {"data": b64(a_control(kind="explode"))}}, "kind 'explode' is unknown", id="unknown_kind"),
    pytest.param(
        {"message": {"data": b64(a_control(kind="ready", pool="chat"))}},
        "ready message without an instance",
        id="ready_without_instance",
    ),
    pytest.param(
        {"message": {"data": b64(a_control(kind="wake"))}}, "wake message without a pool", id="wake_without_pool"
    ),
    pytest.param(
        {"message": {"data": b64(a_control(kind="progress", instance="chat-a-1"))}},
        "progress message phase None is not one of installing, copying_weights, pulling, loading",
        id="progress_without_phase",
    ),
    pytest.param(
        {"message": {"data": b64(a_control(kind="progress", instance="chat-a-1", phase="dreaming"))}},
        "phase 'dreaming' is not one of",
        id="progress_unknown_phase",
    ),
    pytest.param(
        {"message": {"data": b64(a_control(kind="progress", phase="loading"))}},
        "progress message without an instance",
        id="progress_without_instance",
    ),
    pytest.param(
        {"message": {"data": b64(a_control(kind="ready", instance="chat-a-1", phase="loading"))}},
        "ready message with a 'phase'",
        id="phase_on_another_kind",
    ),
    pytest.param(
        {"message": {"data": b64(a_control(kind="sleep", until="2026-11-24T07:00:00Z"))}},
        "sleep message without a pool",
        id="sleep_without_pool",
    ),
    pytest.param(
        {"message": {"data": b64(a_control(kind="sleep", pool="chat", until="tomorrow"))}},
        "'until' is not an RFC 3339",
        id="bad_until",
    ),
    pytest.param(
        {"message": {"data": b64(a_control(kind="wake", pool=["chat"]))}}, "'pool' is not a string", id="pool_not_text"
    ),
    pytest.param(
        {"message": {"data": b64(a_control(kind="tick", at="2026-11-23T11:59:30"))}},
        "'at' is not an RFC",
        id="naive_at",
    ),
]


@pytest.mark.parametrize(("data", "reason"), IGNORED_CASES)
def test_unusable_deliveries_are_ignored_with_a_reason(data: object, reason: str) -> None:
    event = parse(data)
    assert isinstance(event, Ignored)
    assert reason in event.reason
    assert event.envelope is not None
    assert event.envelope.event_id == "8800112233"


def test_other_cloudevent_types_are_ignored() -> None:
    attributes = {**ce_attributes(), "type": "google.cloud.storage.object.v1.finalized"}
    event = parse({"message": a_message(a_control(kind="tick"))}, attributes)
    assert isinstance(event, Ignored)
    assert "google.cloud.storage.object.v1.finalized is not a Pub/Sub message" in event.reason


def test_control_message_without_any_time_is_ignored() -> None:
    event = parse({"message": {"data": b64({"v": 1, "kind": "tick"})}}, attributes={"id": "x"})
    assert isinstance(event, Ignored)
    assert "no 'at'" in event.reason


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(a_log_entry(timestamp="2026-11-23T11:29:59Z"), id="compute_event"),
        pytest.param(a_control(kind="ready", instance="chat-a-1", at="2026-11-23T11:29:59Z"), id="control_message"),
    ],
)
def test_events_older_than_max_age_are_ignored(payload: dict[str, Any]) -> None:
    event = parse({"message": a_message(payload)})
    assert isinstance(event, Ignored)
    assert "too old: sent 2026-11-23T11:29:59Z" in event.reason


def test_event_exactly_max_age_old_is_kept() -> None:
    assert isinstance(parse({"message": a_message(a_control(kind="tick", at="2026-11-23T11:30:00Z"))}), ControlMessage)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2026-11-23T11:58:00.512345678Z", ago(minutes=1, seconds=59.487655), id="nanoseconds"),
        pytest.param("2026-11-23T12:58:00+01:00", ago(minutes=2), id="offset"),
        pytest.param("2026-11-23t11:58:00z", ago(minutes=2), id="lowercase"),
        pytest.param("2026-11-23T11:58:00", None, id="naive"),
        pytest.param("2026-11-23", None, id="date_only"),
        pytest.param("", None, id="empty"),
        pytest.param(1795000000, None, id="epoch_number"),
    ],
)
def test_parse_timestamp(text: object, expected: object) -> None:
    assert parse_timestamp(text) == expected


# ---- which pool an event concerns ----------------------------------------------------------------------------


def a_fleet() -> FleetConfig:
    return parse_fleet(
        {
            "project": PROJECT,
            "pools": [
                {"name": "chat", "model": "llama", "spot": {"zones": ["us-central1-a", "us-central1-b"]}},
                {"name": "embed", "model": "bge", "spot": {"zones": ["us-central1-b"]}},
            ],
        }
    )


def _compute(instance: str, zone: str) -> ComputeEvent:
    return ComputeEvent(ComputeEventKind.PREEMPTED, PROJECT, zone, instance, NOW)


POOL_OF_CASES = [
    pytest.param(_compute("chat-b-1", "us-central1-b"), "chat", id="compute_event_by_instance"),
    pytest.param(_compute("chat-b-1", "us-central1-f"), None, id="same_name_other_zone"),
    pytest.param(_compute("stranger-1", "us-central1-b"), None, id="unknown_vm"),
    pytest.param(ControlMessage(ControlKind.WAKE, NOW, pool="embed"), "embed", id="wake_by_pool"),
    pytest.param(ControlMessage(ControlKind.READY, NOW, instance="embed-b-1"), "embed", id="ready_by_instance"),
    pytest.param(
        ControlMessage(ControlKind.READY, NOW, pool="chat", instance="embed-b-1"), None, id="instance_of_another_pool"
    ),
    pytest.param(ControlMessage(ControlKind.SLEEP, NOW, pool="nope"), None, id="unknown_pool"),
    pytest.param(ControlMessage(ControlKind.TICK, NOW), None, id="fleet_wide_tick"),
    pytest.param(Ignored("bad"), None, id="ignored"),
]


@pytest.mark.parametrize(("event", "pool"), POOL_OF_CASES)
def test_pool_of(event: InboundEvent, pool: str | None) -> None:
    found = pool_of(event, a_fleet())
    assert (found.name if found else None) == pool


# ---- folding events into pool state --------------------------------------------------------------------------

SPEC = a_pool_spec()


def _msg(kind: ControlKind, seconds_ago: float, **fields: Any) -> ControlMessage:
    return ControlMessage(kind, ago(seconds=seconds_ago), **{"pool": "chat", **fields})


def _preempt(
    instance: str = "chat-a-1", seconds_ago: float = 10, kind: ComputeEventKind = ComputeEventKind.PREEMPTED
) -> ComputeEvent:
    return ComputeEvent(kind, PROJECT, "us-central1-a", instance, ago(seconds=seconds_ago))


FOLD_CASES = [
    pytest.param(
        [_msg(ControlKind.READY, 5, instance="chat-a-1")],
        {"notices": {"chat-a-1": Notice(NoticeKind.READY, ago(seconds=5))}},
        id="ready_notice",
    ),
    pytest.param(
        [_msg(ControlKind.READY, 5, instance="chat-a-1"), _msg(ControlKind.DRAINING, 9, instance="chat-a-1")],
        {"notices": {"chat-a-1": Notice(NoticeKind.READY, ago(seconds=5))}},
        id="older_notice_never_wins",
    ),
    pytest.param(
        [_msg(ControlKind.READY, 5, instance="chat-a-1"), _msg(ControlKind.DRAINING, 5, instance="chat-a-1")],
        {"notices": {"chat-a-1": Notice(NoticeKind.DRAINING, ago(seconds=5))}},
        id="draining_wins_a_tie",
    ),
    pytest.param([_msg(ControlKind.READY, 5, instance="stranger-1")], {"notices": {}}, id="vm_of_another_pool"),
    pytest.param([_msg(ControlKind.WAKE, 5, pool="embed")], {"last_wake_at": None}, id="message_for_another_pool"),
    pytest.param(
        [_preempt(), _preempt()],
        {
            "notices": {"chat-a-1": Notice(NoticeKind.DRAINING, ago(seconds=10))},
            "preemptions": (Preemption("chat-a-1", "us-central1-a", ago(seconds=10)),),
        },
        id="duplicate_preemption_recorded_once",
    ),
    pytest.param(
        [_preempt(kind=ComputeEventKind.HOST_ERROR)],
        {"notices": {"chat-a-1": Notice(NoticeKind.DRAINING, ago(seconds=10))}, "preemptions": ()},
        id="host_error_drains_without_a_preemption_record",
    ),
    pytest.param(
        [_preempt(kind=ComputeEventKind.AUTOMATIC_RESTART)], {"notices": {}}, id="automatic_restart_no_notice"
    ),
    pytest.param(
        [_msg(ControlKind.WAKE, 30), _msg(ControlKind.WAKE, 60)],
        {"last_wake_at": ago(seconds=30)},
        id="older_wake_keeps_the_newer",
    ),
    pytest.param(
        [_msg(ControlKind.SLEEP, 60, until=later(hours=1)), _msg(ControlKind.WAKE, 30)],
        {"override": Override(OverrideKind.SLEEP, later(hours=1), ago(seconds=60)), "last_wake_at": ago(seconds=30)},
        id="gateway_wake_does_not_lift_a_timed_sleep",
    ),
    pytest.param(
        [_msg(ControlKind.SLEEP, 60), _msg(ControlKind.WAKE, 30)],
        {"override": None},
        id="gateway_wake_ends_an_open_ended_sleep",
    ),
    pytest.param(
        [_msg(ControlKind.SLEEP, 60)],
        {"override": Override(OverrideKind.SLEEP, FOREVER, ago(seconds=60))},
        id="open_ended_sleep",
    ),
    pytest.param(
        [_msg(ControlKind.WAKE, 30, until=later(hours=2)), _msg(ControlKind.SLEEP, 60, until=later(hours=1))],
        {"override": Override(OverrideKind.WAKE, later(hours=2), ago(seconds=30))},
        id="older_override_never_wins",
    ),
    pytest.param([_msg(ControlKind.TICK, 1)], {}, id="tick_changes_nothing"),
    pytest.param([Ignored("bad")], {}, id="ignored_changes_nothing"),
]


@pytest.mark.parametrize(("events", "expected"), FOLD_CASES)
def test_apply_event(events: list[InboundEvent], expected: dict[str, Any]) -> None:
    state = a_state()
    for event in events:
        state = apply_event(state, event, SPEC)
    for field, value in expected.items():
        assert getattr(state, field) == value, field
    if not expected:
        assert state == a_state()


def test_old_preemptions_are_pruned_when_a_new_one_arrives() -> None:
    old = Preemption("chat-b-1", "us-central1-b", ago(hours=7))
    state = apply_event(a_state(preemptions=(old,)), _preempt(), SPEC)
    assert state.preemptions == (Preemption("chat-a-1", "us-central1-a", ago(seconds=10)),)


FAST_PATH_CASES = [
    pytest.param(_preempt(), "ready", "draining", id="preemption_drains_a_ready_route"),
    pytest.param(_msg(ControlKind.DRAINING, 3, instance="chat-a-1"), "starting", "draining", id="draining_notice"),
    pytest.param(
        _preempt(kind=ComputeEventKind.TERMINATE_ON_HOST_MAINTENANCE), "ready", "draining", id="host_maintenance"
    ),
    pytest.param(_preempt(instance="chat-b-1"), "ready", None, id="other_vm_untouched"),
    pytest.param(_preempt(), "down", None, id="down_route_untouched"),
    pytest.param(_preempt(seconds_ago=30 * 60), "ready", None, id="stale_notice_older_than_route"),
    pytest.param(_msg(ControlKind.READY, 3, instance="chat-a-1"), "ready", None, id="ready_is_not_a_fast_path"),
    pytest.param(_preempt(kind=ComputeEventKind.AUTOMATIC_RESTART), "ready", None, id="automatic_restart"),
]


@pytest.mark.parametrize(("event", "current", "expected"), FAST_PATH_CASES)
def test_fast_path_routes(event: InboundEvent, current: str, expected: str | None) -> None:
    routes = [a_route("chat-a-1", current, updated_at=ago(minutes=20))]
    changed = fast_path_routes(event, routes, NOW)
    assert [r.state for r in changed] == ([RouteState(expected)] if expected else [])
    assert all(r.updated_at == NOW and r.reason.startswith("draining: ") for r in changed)
