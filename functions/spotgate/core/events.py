"""Turn one Pub/Sub delivery (as functions-framework hands it over) into a domain event.

Three envelope forms reach the functions: Eventarc's binary CloudEvent, a structured CloudEvent, and the
framework's conversion of a raw Pub/Sub push. All three carry the same ``{"message": {...}}`` data, with
``messageId``/``message_id`` and ``publishTime``/``publish_time`` spelled either way. Inside the base64
``data`` is either an audit ``LogEntry`` from the log sink or one of spotgate's own control messages.

Bad input never raises: a delivery that cannot be used becomes ``Ignored`` with the reason, because the
entry point acks it (a redelivery would fail the same way forever). Internally each check raises
``InvalidEventError`` and ``parse_delivery`` turns it into ``Ignored``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from spotgate.core.instants import zulu
from spotgate.domain import (
    BootPhase,
    ComputeEvent,
    ComputeEventKind,
    ControlKind,
    ControlMessage,
    Envelope,
    Ignored,
    InboundEvent,
)
from spotgate.errors import InvalidEventError
from spotgate.fleet import FleetConfig, PoolSpec

CONTROL_VERSION = 1
PUBSUB_MESSAGE_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
_RESOURCE_NAME = re.compile(r"^projects/(?P<project>[^/]+)/zones/(?P<zone>[^/]+)/instances/(?P<instance>[^/]+)$")
_SYSTEM_EVENT_LOGS = ("cloudaudit.googleapis.com%2Fsystem_event", "cloudaudit.googleapis.com/system_event")
_METHODS = frozenset(kind.value for kind in ComputeEventKind)
_NEEDS_INSTANCE = (ControlKind.READY, ControlKind.DRAINING, ControlKind.PROGRESS)
_NEEDS_POOL = (ControlKind.WAKE, ControlKind.SLEEP)


def parse_delivery(attributes: Mapping[str, Any], data: object, *, now: datetime, max_age: timedelta) -> InboundEvent:
    """The event carried by one delivery; ``Ignored`` (with a reason) for anything unusable or too old.

    ``attributes`` are the CloudEvent attributes (``id``, ``source``, ``time``, …); ``data`` is the CloudEvent
    data as a dict, or its JSON as bytes or str. Never raises for bad input.
    """
    envelope = Envelope(
        event_id=str(attributes.get("id") or ""),
        source=str(attributes.get("source") or ""),
        published_at=parse_timestamp(attributes.get("time")),
    )
    try:
        _check_type(attributes)
        message = _pubsub_message(data)
        envelope = _envelope(attributes, message)
        event = _event(_payload(message), envelope)
    except InvalidEventError as e:
        return Ignored(reason=str(e), envelope=envelope)
    if isinstance(event, ComputeEvent | ControlMessage) and now - event.at > max_age:
        return Ignored(
            reason=f"too old: sent {zulu(event.at)}, older than {max_age} before {zulu(now)}", envelope=envelope
        )
    return event


def pool_of(event: InboundEvent, fleet: FleetConfig) -> PoolSpec | None:
    """The pool an event concerns; None for ``Ignored``, a fleet-wide tick, or a VM no pool owns.

    VM names are unique per zone, not per project, so a zone given with the event must match the pool's VM.
    A message naming both a pool and an instance of another pool concerns neither.
    """
    if isinstance(event, Ignored):
        return None
    pool = fleet.pool(event.pool) if isinstance(event, ControlMessage) and event.pool else None
    if isinstance(event, ControlMessage) and event.pool and pool is None:
        return None
    if not event.instance:
        return pool
    owner = pool or fleet.pool_of_instance(event.instance)
    vm = owner.vm(event.instance) if owner else None
    if vm is None or (event.zone and event.zone != vm.zone):
        return None
    return owner


def parse_timestamp(value: object) -> datetime | None:
    """An RFC 3339 timestamp (``Z`` or an offset; any fraction digits) as aware UTC; None if not one."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else None
    if not isinstance(value, str) or "T" not in value.upper():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().upper())
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else None


def _check_type(attributes: Mapping[str, Any]) -> None:
    """Only Pub/Sub deliveries are ours; a caller that gives no type (a test, a converted push) is trusted."""
    kind = attributes.get("type")
    if kind and kind != PUBSUB_MESSAGE_PUBLISHED:
        raise InvalidEventError(f"CloudEvent type {kind} is not a Pub/Sub message")


def _pubsub_message(data: object) -> Mapping[str, Any]:
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidEventError(f"CloudEvent data is not JSON: {e}") from None
    if not isinstance(data, Mapping):
        raise InvalidEventError("CloudEvent data is not a JSON object")
    message = data.get("message")
    if not isinstance(message, Mapping):
        raise InvalidEventError("CloudEvent data has no Pub/Sub 'message' object")
    return message


def _envelope(attributes: Mapping[str, Any], message: Mapping[str, Any]) -> Envelope:
    message_id = message.get("messageId") or message.get("message_id") or ""
    published = parse_timestamp(message.get("publishTime") or message.get("publish_time"))
    raw = message.get("attributes")
    extra = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}
    return Envelope(
        event_id=str(attributes.get("id") or message_id),
        source=str(attributes.get("source") or ""),
        published_at=published or parse_timestamp(attributes.get("time")),
        attributes=extra,
    )


def _payload(message: Mapping[str, Any]) -> Mapping[str, Any]:
    raw = message.get("data")
    if not raw:
        raise InvalidEventError("Pub/Sub message has no data")
    if not isinstance(raw, str | bytes):
        raise InvalidEventError("Pub/Sub message data is not base64 text")
    try:
        payload = json.loads(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError) as e:
        raise InvalidEventError(f"Pub/Sub message data is not base64 JSON: {e}") from None
    if not isinstance(payload, Mapping):
        raise InvalidEventError("Pub/Sub message data is not a JSON object")
    return payload


def _event(payload: Mapping[str, Any], envelope: Envelope) -> ComputeEvent | ControlMessage:
    if "protoPayload" in payload or "logName" in payload:
        return _compute_event(payload, envelope)
    if "kind" in payload or "v" in payload:
        return _control_message(payload, envelope)
    raise InvalidEventError("payload is neither an audit LogEntry nor a spotgate control message")


def _compute_event(entry: Mapping[str, Any], envelope: Envelope) -> ComputeEvent:
    log_name = str(entry.get("logName") or "")
    if not log_name.endswith(_SYSTEM_EVENT_LOGS):
        raise InvalidEventError(f"not a system_event audit log: {log_name or '(no logName)'}")
    resource = _mapping(entry, "resource")
    if resource.get("type") != "gce_instance":
        raise InvalidEventError(f"resource type {resource.get('type')!r} is not gce_instance")
    method = str(_mapping(entry, "protoPayload").get("methodName") or "")
    if method not in _METHODS:
        raise InvalidEventError(f"method {method or '(none)'} is not a handled system event")
    project, zone, instance = _resource_name(entry, _mapping(resource, "labels"))
    at = parse_timestamp(entry.get("timestamp"))
    if at is None:
        raise InvalidEventError("LogEntry has no valid timestamp")
    instance_id = str(_mapping(resource, "labels").get("instance_id") or "")
    return ComputeEvent(ComputeEventKind(method), project, zone, instance, at, instance_id, envelope)


def _resource_name(entry: Mapping[str, Any], labels: Mapping[str, Any]) -> tuple[str, str, str]:
    """(project, zone, instance) from ``resourceName``, cross-checked with ``resource.labels``.

    ``resourceName`` may name the project by number; the label always holds the project id, so it wins.
    """
    name = str(_mapping(entry, "protoPayload").get("resourceName") or "")
    match = _RESOURCE_NAME.match(name)
    if match is None:
        raise InvalidEventError(f"resourceName {name or '(none)'!r} is not projects/*/zones/*/instances/*")
    zone_label = labels.get("zone")
    if zone_label and zone_label != match["zone"]:
        raise InvalidEventError(f"resourceName zone {match['zone']} disagrees with resource label zone {zone_label}")
    project_label = str(labels.get("project_id") or "")
    project = match["project"]
    if project_label and not project.isdigit() and project != project_label:
        raise InvalidEventError(
            f"resourceName project {project} disagrees with resource label project_id {project_label}"
        )
    return project_label or project, match["zone"], match["instance"]


def _control_message(payload: Mapping[str, Any], envelope: Envelope) -> ControlMessage:
    version = payload.get("v")
    if isinstance(version, bool) or version != CONTROL_VERSION:
        raise InvalidEventError(f"control message version {version!r} is not supported (expected {CONTROL_VERSION})")
    try:
        kind = ControlKind(str(payload.get("kind")))
    except ValueError:
        raise InvalidEventError(f"control message kind {payload.get('kind')!r} is unknown") from None
    pool, instance, zone = (_optional_text(payload, key) for key in ("pool", "instance", "zone"))
    if kind in _NEEDS_INSTANCE and instance is None:
        raise InvalidEventError(f"{kind} message without an instance")
    if kind in _NEEDS_POOL and pool is None:
        raise InvalidEventError(f"{kind} message without a pool")
    return ControlMessage(
        kind,
        _message_time(payload, envelope),
        pool,
        instance,
        zone,
        _optional_time(payload, "until"),
        envelope,
        _phase(payload, kind),
    )


def _phase(payload: Mapping[str, Any], kind: ControlKind) -> BootPhase | None:
    """The boot phase of a ``progress`` message (required there, refused anywhere else)."""
    value = payload.get("phase")
    if kind is not ControlKind.PROGRESS:
        if value is not None:
            raise InvalidEventError(f"{kind} message with a 'phase' (only progress messages have one)")
        return None
    try:
        return BootPhase(str(value))
    except ValueError:
        known = ", ".join(phase.value for phase in BootPhase)
        raise InvalidEventError(f"progress message phase {value!r} is not one of {known}") from None


def _message_time(payload: Mapping[str, Any], envelope: Envelope) -> datetime:
    """``at`` from the message, else the publish time (Scheduler's static tick body cannot carry one)."""
    at = _optional_time(payload, "at") or envelope.published_at
    if at is None:
        raise InvalidEventError("control message has no 'at' and the delivery no publish time")
    return at


def _optional_text(payload: Mapping[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidEventError(f"control message field {key!r} is not a string")
    return value


def _optional_time(payload: Mapping[str, Any], key: str) -> datetime | None:
    value = payload.get(key)
    if value is None:
        return None
    parsed = parse_timestamp(value)
    if parsed is None:
        raise InvalidEventError(f"control message field {key!r} is not an RFC 3339 timestamp: {value!r}")
    return parsed


def _mapping(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, Mapping) else {}
