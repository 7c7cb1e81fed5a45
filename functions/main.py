"""Cloud Functions entry points (gen2, Eventarc Pub/Sub triggers). Thin: parse, hand to the service, ack or retry.

Ack (return normally) when the event is handled, irrelevant, malformed, or too old: redelivering those
would never help. Retry (raise, HTTP 500) only on transient failures — the store or an API did not answer,
or another worker holds the pool's lease — and Pub/Sub redelivers with backoff. Nothing is built at
import time; the control plane is composed on the first call and reused while the instance is warm.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

import functions_framework
from cloudevents.http import CloudEvent

from spotgate.bootstrap import ControlPlaneRuntime, build_control_plane
from spotgate.core.events import parse_delivery
from spotgate.errors import PermanentError, TransientError

log = logging.getLogger("spotgate.functions")


@cache
def _runtime() -> ControlPlaneRuntime:
    return build_control_plane()


@functions_framework.cloud_event
def on_compute_event(cloud_event: CloudEvent) -> None:
    """Compute Engine system-event audit logs, via the log sink's Pub/Sub topic."""
    _handle(cloud_event, "compute")


@functions_framework.cloud_event
def on_control(cloud_event: CloudEvent) -> None:
    """spotgate control messages: Scheduler ticks, agent ready/draining, gateway wake, sleep/wake overrides."""
    _handle(cloud_event, "control")


def _handle(cloud_event: CloudEvent, source: str) -> None:
    runtime = _runtime()
    attributes: dict[str, Any] = dict(cloud_event.get_attributes())
    event = parse_delivery(
        attributes, cloud_event.get_data(), now=runtime.clock.now(), max_age=runtime.settings.event_max_age
    )
    fields = {"source": source, "event_id": attributes.get("id", "")}
    try:
        outcome = runtime.control_plane.handle(event)
    except TransientError as e:
        log.warning("retrying delivery: %s", e, extra=fields)
        raise
    except PermanentError as e:
        log.error("dropping delivery: %s", e, extra=fields)
        return
    log.info(
        "handled %s event", type(event).__name__, extra={**fields, "pools": outcome.pools, "skipped": outcome.skipped}
    )
