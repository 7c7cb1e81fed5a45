"""The composition root: settings in, wired adapters out.

This is the one place that decides between GCP and the sandbox (``SPOTGATE_MODE``; in sandbox mode the
same Google client adapters are pointed at local endpoints) and between Firestore and SQLite
(``SPOTGATE_STORE``). Functions, the gateway and the CLI all build their dependencies here.
"""

from __future__ import annotations

from dataclasses import dataclass

from spotgate.clock import SystemClock
from spotgate.fleet import FleetConfig
from spotgate.logs import configure_logging
from spotgate.ports import CapacityAdvisor, Clock, Compute, Overflow, Publisher, RouteStore, WakeScheduler
from spotgate.services.control_plane import ControlPlane
from spotgate.settings import Settings, read_settings


@dataclass(frozen=True, slots=True)
class ControlPlaneRuntime:
    settings: Settings
    fleet: FleetConfig
    store: RouteStore
    clock: Clock
    control_plane: ControlPlane


def build_store(settings: Settings, fleet: FleetConfig | None = None) -> RouteStore:
    """The configured RouteStore (SQLite file or Firestore database)."""
    if settings.store == "sqlite":
        from spotgate.adapters.sqlite_store import SqliteStore

        settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteStore(settings.sqlite_path)
    from google.cloud import firestore

    from spotgate.adapters.firestore_store import FirestoreStore

    project = settings.project or (fleet.project if fleet else None)
    client = firestore.Client(project=project, database=settings.firestore_database)
    return FirestoreStore(client, prefix=settings.store_prefix)


def build_compute(settings: Settings, fleet: FleetConfig) -> Compute:
    from spotgate.adapters.gce_compute import GceCompute

    return GceCompute(
        settings.project_id(fleet), endpoint=settings.compute_endpoint, operation_timeout=settings.operation_timeout
    )


def build_overflow(settings: Settings, fleet: FleetConfig) -> Overflow | None:
    """Cloud Run admin for the fleet's region; None when no pool has an overflow service."""
    if not any(p.overflow for p in fleet.pools):
        return None
    from spotgate.adapters.cloud_run_overflow import CloudRunOverflow

    regions = {p.overflow.service: p.overflow.region or fleet.region for p in fleet.pools if p.overflow}
    return CloudRunOverflow(
        settings.project_id(fleet),
        regions,
        endpoint=settings.run_endpoint,
        operation_timeout=settings.operation_timeout,
    )


def build_advisor(settings: Settings, fleet: FleetConfig) -> CapacityAdvisor | None:
    """Compute Engine's capacity advice; None when no pool asks for it (``capacity_advice``)."""
    if not any(p.capacity_advice for p in fleet.pools):
        return None
    from spotgate.adapters.gce_advice import GceAdvisor

    return GceAdvisor(settings.project_id(fleet), endpoint=settings.compute_endpoint)


def build_scheduler(settings: Settings, fleet: FleetConfig) -> WakeScheduler | None:
    """Cloud Tasks for the planner's timers when a queue is configured; None: timers wait for the tick."""
    if not settings.tasks_queue:
        return None
    from spotgate.adapters.cloud_tasks_scheduler import CloudTasksScheduler

    return CloudTasksScheduler(
        settings.tasks_queue,
        f"projects/{settings.project_id(fleet)}/topics/{settings.control_topic}",
        settings.tasks_service_account,
        pubsub_endpoint=settings.pubsub_endpoint,
        endpoint=settings.tasks_endpoint,
    )


def build_publisher(settings: Settings, fleet: FleetConfig) -> Publisher:
    from spotgate.adapters.pubsub_publisher import PubSubPublisher

    return PubSubPublisher(settings.project_id(fleet))


def build_control_plane(settings: Settings | None = None) -> ControlPlaneRuntime:
    """Everything a control-plane function needs, from the environment (or the given settings)."""
    settings = settings or read_settings()
    configure_logging(settings.log_level)
    fleet = settings.load_fleet()
    store = build_store(settings, fleet)
    clock = SystemClock()
    plane = ControlPlane(
        fleet,
        store,
        build_compute(settings, fleet),
        build_overflow(settings, fleet),
        clock,
        lease_ttl=settings.lease_ttl,
        advisor=build_advisor(settings, fleet),
        scheduler=build_scheduler(settings, fleet),
    )
    return ControlPlaneRuntime(settings, fleet, store, clock, plane)
