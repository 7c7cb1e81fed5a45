"""Builders for what Eventarc delivers to a gen2 function: Pub/Sub CloudEvents around our payloads.

Shapes follow the reference captures (binary mode with ``ce-*`` headers; structured mode; both field
spellings inside ``message``); names, ids and projects here are our own.
"""

from __future__ import annotations

import base64
import itertools
import json
from datetime import UTC, datetime
from typing import Any

PROJECT = "spotgate-test"
_ids = itertools.count(7300000000001)


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def audit_entry(method: str, instance: str, zone: str, at: datetime, *, project: str = PROJECT) -> dict[str, Any]:
    """A Compute Engine system-event audit LogEntry as the log sink publishes it."""
    return {
        "insertId": "-x1y2z3a4b5",
        "logName": f"projects/{project}/logs/cloudaudit.googleapis.com%2Fsystem_event",
        "operation": {"first": True, "last": True, "id": f"systemevent-{next(_ids)}", "producer": method},
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "authenticationInfo": {"principalEmail": "system@google.com"},
            "methodName": method,
            "request": {"@type": f"type.googleapis.com/{method}"},
            "resourceName": f"projects/{project}/zones/{zone}/instances/{instance}",
            "serviceName": "compute.googleapis.com",
            "status": {"message": "Instance was preempted."},
        },
        "receiveTimestamp": rfc3339(at),
        "resource": {
            "labels": {"instance_id": "4815162342000001", "project_id": project, "zone": zone},
            "type": "gce_instance",
        },
        "severity": "INFO",
        "timestamp": rfc3339(at),
    }


def control(kind: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return {"v": 1, "kind": kind, "at": rfc3339(at), **fields}


def pubsub_body(data: bytes, topic: str, message_id: str, at: datetime) -> dict[str, Any]:
    published = rfc3339(at)
    return {
        "message": {
            "data": base64.b64encode(data).decode(),
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": published,
            "publish_time": published,
        },
        "subscription": f"projects/{PROJECT}/subscriptions/eventarc-us-central1-{topic}-sub-001",
    }


def binary(payload: Any, *, topic: str, at: datetime, message_id: str | None = None) -> tuple[dict[str, str], str]:
    """Headers and body of a binary-mode delivery (how Eventarc really delivers)."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    message_id = message_id or str(next(_ids))
    headers = {
        "ce-id": message_id,
        "ce-source": f"//pubsub.googleapis.com/projects/{PROJECT}/topics/{topic}",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-specversion": "1.0",
        "ce-time": rfc3339(at),
        "content-type": "application/json",
    }
    return headers, json.dumps(pubsub_body(data, topic, message_id, at))


def structured(payload: Any, *, topic: str, at: datetime, message_id: str | None = None) -> tuple[dict[str, str], str]:
    """Headers and body of a structured-mode delivery (``application/cloudevents+json``)."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    message_id = message_id or str(next(_ids))
    event = {
        "specversion": "1.0",
        "id": message_id,
        "source": f"//pubsub.googleapis.com/projects/{PROJECT}/topics/{topic}",
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "time": rfc3339(at),
        "datacontenttype": "application/json",
        "data": pubsub_body(data, topic, message_id, at),
    }
    return {"content-type": "application/cloudevents+json"}, json.dumps(event)
