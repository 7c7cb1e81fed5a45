"""Settings: how this process runs, from ``SPOTGATE_*`` environment variables.

This module is the only reader of ``os.environ`` in spotgate (an import-linter contract keeps the core from
importing it); the fleet itself is a pure value in ``spotgate.fleet``.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from spotgate.errors import ConfigError
from spotgate.fleet import Duration, FleetConfig, load_fleet, parse_fleet


class Settings(BaseSettings):
    """How this process runs, from ``SPOTGATE_*`` environment variables (see README, Configuration)."""

    model_config = SettingsConfigDict(env_prefix="SPOTGATE_", extra="ignore", frozen=True)

    mode: Literal["gcp", "sandbox"] = "gcp"
    project: str = ""  # defaults to the fleet's project
    fleet: str | None = None  # inline JSON fleet (Terraform passes this to functions and gateway)
    fleet_file: Path | None = None

    store: Literal["sqlite", "firestore"] = "firestore"
    sqlite_path: Path = Path(".spotgate/spotgate.db")
    firestore_database: str = "(default)"
    store_prefix: str = "spotgate"  # collection name prefix, so several fleets can share a database

    compute_endpoint: str | None = None  # e.g. http://127.0.0.1:8089 for the sandbox; None = Google
    run_endpoint: str | None = None
    control_topic: str = "spotgate-control"
    # Cloud Tasks queue (projects/P/locations/L/queues/Q) for the planner's timers; empty: wait for the tick
    tasks_queue: str = ""
    tasks_service_account: str = ""  # whose OAuth token a task uses to publish to the control topic
    tasks_endpoint: str | None = None  # e.g. the sandbox's Cloud Tasks; None = Google
    pubsub_endpoint: str = "https://pubsub.googleapis.com"  # REST publish URL base a task calls
    compute_topic: str = "spotgate-compute"

    event_max_age: Duration = timedelta(minutes=30)  # older deliveries are acked and ignored
    lease_ttl: Duration = timedelta(seconds=60)
    operation_timeout: Duration = timedelta(seconds=120)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    def load_fleet(self) -> FleetConfig:
        """The fleet from ``SPOTGATE_FLEET`` (inline JSON) or ``SPOTGATE_FLEET_FILE``; ConfigError if neither."""
        if self.fleet:
            try:
                data = json.loads(self.fleet)
            except json.JSONDecodeError as e:
                raise ConfigError(f"SPOTGATE_FLEET is not valid JSON: {e}") from None
            return parse_fleet(data, "SPOTGATE_FLEET")
        if self.fleet_file:
            return load_fleet(self.fleet_file)
        raise ConfigError("no fleet configured: set SPOTGATE_FLEET (inline JSON) or SPOTGATE_FLEET_FILE")

    def project_id(self, fleet: FleetConfig) -> str:
        return self.project or fleet.project


class GatewaySettings(BaseSettings):
    """Gateway-only settings (``SPOTGATE_GATEWAY_*``)."""

    model_config = SettingsConfigDict(env_prefix="SPOTGATE_GATEWAY_", extra="ignore", frozen=True)

    url: str = ""  # the gateway's own URL: the default accepted ID-token audience
    audiences: tuple[str, ...] = ()  # extra accepted ID-token audiences
    allowed_principals: tuple[str, ...] = ()  # emails, or "@example.com" for a whole domain
    certs_url: str = "https://www.googleapis.com/oauth2/v1/certs"
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_body_bytes_in_flight: int = Field(default=32 * 1024 * 1024, ge=1024)  # all bodies held by one worker
    max_uploads_per_key: int = Field(default=4, ge=1)  # bodies of one key being received at once, per worker
    body_timeout: Duration = timedelta(seconds=60)  # the whole request body must arrive within this
    header_timeout: Duration = timedelta(seconds=15)  # a request's head, from its first byte (gunicorn worker)
    max_json_depth: int = Field(default=32, ge=2)
    max_json_elements: int = Field(default=200_000, ge=16)  # array items and object members, all levels

    @model_validator(mode="after")
    def _one_body_fits_the_budget(self) -> GatewaySettings:
        if self.max_body_bytes_in_flight < self.max_body_bytes:
            raise ValueError("max_body_bytes_in_flight must be at least max_body_bytes")
        return self

    activity_flush: Duration = timedelta(seconds=5)
    wake_debounce: Duration = timedelta(seconds=15)
    eject_after_failures: int = Field(default=2, ge=1)
    eject_for: Duration = timedelta(seconds=10)
    connect_timeout: Duration = timedelta(seconds=3)
    read_timeout: Duration = timedelta(seconds=600)
    heartbeat: Duration = timedelta(seconds=10)
    max_snapshot_age: Duration = timedelta(minutes=2)  # resubscribe after half of it; stale after all of it


def read_settings(env_file: Path | None = None) -> Settings:
    """Settings from the environment, plus ``env_file`` (KEY=VALUE lines) if given; the environment wins.

    Raises ConfigError naming the variable.
    """
    try:
        return Settings(_env_file=env_file) if env_file else Settings()
    except ValidationError as e:
        raise ConfigError(_settings_error("SPOTGATE_", e)) from None


def read_gateway_settings() -> GatewaySettings:
    """Gateway settings from the environment. Raises ConfigError naming the variable."""
    try:
        return GatewaySettings()
    except ValidationError as e:
        raise ConfigError(_settings_error("SPOTGATE_GATEWAY_", e)) from None


def environment() -> dict[str, str]:
    """A copy of the process environment, for the few callers that must hand it on (child processes)."""
    return dict(os.environ)


def _settings_error(prefix: str, error: ValidationError) -> str:
    parts = [f"{prefix}{str(item['loc'][0]).upper()}: {item['msg']}" for item in error.errors() if item["loc"]]
    return "invalid settings: " + "; ".join(parts)
