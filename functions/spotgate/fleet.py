"""The fleet: what pools exist and how each behaves, as pure pydantic values.

``FleetConfig`` is loaded from YAML or JSON (a file, or inline JSON handed over by ``spotgate.settings``) and
is the single source of truth shared with Terraform (``infra/`` renders the same pools to JSON). This module
reads no environment and does no I/O beyond ``load_fleet``'s file read, so the pure core may import it.

Durations accept seconds (``90``) or a string with units (``"90s"``, ``"15m"``, ``"1h30m"``).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from spotgate.domain import ProvisioningModel
from spotgate.errors import ConfigError

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_ISO_DURATION = TypeAdapter(timedelta)
GCE_NAME = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
ZONE = r"^[a-z]+-[a-z]+[0-9]+-[a-z]$"
REGION = r"^[a-z]+-[a-z]+[0-9]+$"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network("127.0.0.0/8")
    except ValueError:
        return False


def parse_duration(value: object) -> timedelta:
    """Turn ``90``, ``90.5``, ``"90s"``, ``"15m"``, ``"1h30m"``, ISO ``"PT15M"`` or a timedelta into a timedelta.

    Raises ValueError for anything else, including negative values.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError("a duration is seconds or a string like '90s', '15m', '1h30m'")
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        elif text.startswith("P"):  # ISO 8601, which is how pydantic itself writes a timedelta to JSON
            seconds = _iso_seconds(text)
        elif re.fullmatch(rf"(?:{_DURATION_PART.pattern})+", text):
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
        else:
            raise ValueError(f"invalid duration {value!r}: use seconds or units like '90s', '15m', '1h30m'")
    else:
        raise ValueError("a duration is seconds or a string like '90s', '15m', '1h30m'")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return timedelta(seconds=seconds)


def _iso_seconds(text: str) -> float:
    try:
        return _ISO_DURATION.validate_python(text).total_seconds()
    except ValidationError:
        raise ValueError(f"invalid duration {text!r}: use seconds or units like '90s', '15m', '1h30m'") from None


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
# Default of ``pools[].preemption_half_life``, chosen by ``bench.simulation_options`` (README).
HALF_LIFE_DEFAULT = timedelta(minutes=15)
# Default of ``pools[].stockout_weight``, chosen by ``bench.simulation_options`` (README).
STOCKOUT_WEIGHT_DEFAULT = 0.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(_Strict):
    """Active on ``days`` from ``start`` to ``end`` local time; ``end <= start`` crosses midnight.

    A window crossing midnight belongs to the day it starts on: ``fri 22:00-02:00`` covers Saturday 01:00.
    """

    days: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = DAYS  # type: ignore[assignment]
    start: time
    end: time

    @field_validator("days", mode="before")
    @classmethod
    def _lower_days(cls, value: object) -> object:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list | tuple):
            return tuple(str(d).strip().lower()[:3] for d in value)
        return value


class ActiveHours(_Strict):
    """When a pool should be able to serve from its VMs; outside, desired ready VMs is 0."""

    timezone: str = "UTC"
    windows: tuple[Window, ...] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown IANA time zone {value!r}") from e
        return value


class VmSpec(_Strict):
    """One existing VM of a pool (Terraform creates it; spotgate only starts and stops it)."""

    name: str = Field(pattern=GCE_NAME)
    zone: str = Field(pattern=ZONE)
    provisioning_model: ProvisioningModel = ProvisioningModel.SPOT


class SpotGroup(_Strict):
    """Generate SPOT VMs ``<prefix>-<zone suffix>-<n>`` as zones x per_zone (an alternative to listing)."""

    zones: tuple[Annotated[str, Field(pattern=ZONE)], ...] = Field(min_length=1)
    per_zone: int = Field(default=1, ge=1, le=16)
    name_prefix: str | None = Field(default=None, pattern=r"^[a-z][-a-z0-9]{0,40}$")


class EngineSpec(_Strict):
    """The inference engine on every VM of the pool."""

    port: int = Field(default=8000, ge=1, le=65535)
    health_path: str = Field(default="/health", pattern=r"^/[A-Za-z0-9/_.-]*$")


class FallbackSpec(_Strict):
    """Start the pool's STANDARD VM when no SPOT VM could be started for ``after``."""

    enabled: bool = False
    # 0 s: start it as soon as a SPOT start fails for lack of capacity everywhere. Chosen by `spotgate simulate`
    # on the shared traces (README, "Know before you deploy"): waiting 2 min cost up to 0.7 points of availability
    # and saved no money, since the STANDARD VM is stopped once a SPOT VM is ready again either way.
    after: Duration = timedelta(seconds=0)


class OverflowSpec(_Strict):
    """The pool's Cloud Run GPU service: warm (min instances 1) during gaps, else scaled to zero."""

    service: str = Field(pattern=GCE_NAME)
    url: str = Field(pattern=r"^https?://[^\s/]+(/.*)?$")
    audience: str | None = None  # ID-token audience; defaults to ``url``

    @field_validator("url")
    @classmethod
    def _https_unless_loopback(cls, value: str) -> str:
        """The gateway sends an ID token to this URL: only HTTPS, except to 127.0.0.0/8 (the sandbox)."""
        parts = urlsplit(value)
        if parts.scheme == "http" and not _loopback(parts.hostname or ""):
            raise ValueError("must be https:// (the gateway's ID token would travel in clear); http:// only for 127.x")
        return value

    cooldown: Duration = timedelta(minutes=10)
    region: str | None = Field(default=None, pattern=REGION)
    # When a gap warms the service: "always", or "recent_demand": only if a request came within the pool's
    # idle_timeout (or one is in flight), so a gap nobody would notice costs no warm instance (README).
    warm: Literal["always", "recent_demand"] = "always"


class CapacityAdviceSpec(_Strict):
    """Ask Compute Engine's ``advice.capacity`` where a SPOT VM of ``machine_type`` is obtainable and how long
    it is expected to run, and let that rank zones for SPOT starts (cached and rate-limited by the adapter)."""

    machine_type: str = Field(pattern=r"^[a-z][a-z0-9-]{1,62}$")


class PassthroughSpec(_Strict):
    """What ``/pools/<pool>/…`` may call on the pool's backends: nothing unless listed here.

    A prefix matches whole path segments (``/v1/models`` matches ``/v1/models`` and ``/v1/models/x``, not
    ``/v1/modelsx``); ``/`` matches every path. Engines expose administrative paths (vLLM: ``/metrics``,
    LoRA loading, ``/sleep``), so list only what callers need.
    """

    methods: tuple[Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"], ...] = ("GET", "POST")
    path_prefixes: tuple[Annotated[str, Field(pattern=r"^/([A-Za-z0-9._~!$&'()*+,;=:@-]+/?)*$")], ...] = ()

    @field_validator("methods", mode="before")
    @classmethod
    def _upper_methods(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            return tuple(str(m).strip().upper() for m in value)
        return value

    def allows(self, method: str, path: str) -> bool:
        """True if ``method`` on ``path`` (the encoded path sent upstream) is allowed."""
        return method in self.methods and self.allows_path(path)

    def allows_path(self, path: str) -> bool:
        return any(
            p == "/" or path == p.rstrip("/") or path.startswith(p.rstrip("/") + "/") for p in self.path_prefixes
        )


class PoolSpec(_Strict):
    """A pool: one model, its VMs, and the rules for how many of them should be ready."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")
    model: str = Field(min_length=1, max_length=200)
    aliases: tuple[str, ...] = ()
    vms: tuple[VmSpec, ...] = ()
    spot: SpotGroup | None = None
    engine: EngineSpec = EngineSpec()
    min_ready: int = Field(default=0, ge=0)
    max_ready: int = Field(default=1, ge=1)
    target_inflight: int = Field(default=8, ge=1)
    # Hysteresis: a VM is let go only when the rest would carry at most target_inflight x this each.
    scale_down_ratio: float = Field(default=0.5, gt=0, lt=1)
    min_uptime: Duration = timedelta(minutes=10)  # a VM runs this long before a scale-down may stop it
    idle_timeout: Duration = timedelta(minutes=15)
    drain_grace: Duration = timedelta(seconds=30)
    drain_timeout: Duration = timedelta(minutes=5)  # longest a retiring VM drains its streams before its stop
    boot_timeout: Duration = timedelta(minutes=10)
    wake_hold: Duration = timedelta(seconds=30)
    stockout_cooldown: Duration = timedelta(minutes=5)
    active_hours: ActiveHours | None = None
    fallback: FallbackSpec = FallbackSpec()
    overflow: OverflowSpec | None = None
    # An inference request whose backend read it and closed without answering may go to another backend.
    # Off by default: the first engine may have run it, so only pools where running twice is harmless.
    replay_unanswered: bool = False
    passthrough: PassthroughSpec = PassthroughSpec()
    # A stream cut mid-answer (the VM reclaimed) is continued on another backend from the text relayed so far
    # (vLLM's continue_final_message; completions: prompt + text). Off for engines that cannot continue.
    continuation: bool = True
    # GCE's early preemption notice for the pool's SPOT VMs (Scheduling.preemptionNoticeDuration): the
    # metadata server says "preempted" this long before the 30 s ACPI soft-off, so streams can finish.
    # Set by the control plane with instances.setScheduling before a start. None: no early notice.
    preemption_notice: Duration | None = None
    # Extra SPOT VMs kept live while requests are in flight (on top of D), so a preemption leaves a ready VM;
    # they go again by the usual scale-down rules once the pool is quiet. 0: none (measured: README).
    spare: int = Field(default=0, ge=0, le=16)
    # Placement ranks zones for SPOT starts by their preemption history, each remembered preemption (last 6 h)
    # weighing 0.5 ** (age / half-life). None: a plain count over the 6 h (measured: README).
    preemption_half_life: Duration | None = HALF_LIFE_DEFAULT
    # What one remembered SPOT stockout in a zone counts against it in placement, in preemptions (decayed with
    # the same half-life, last 6 h). 0: stockouts only block their zone for stockout_cooldown (README).
    stockout_weight: float = Field(default=STOCKOUT_WEIGHT_DEFAULT, ge=0, le=100)
    # None: no capacity advice; placement then ranks zones exactly as without this feature.
    capacity_advice: CapacityAdviceSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _expand_spot_group(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or not data.get("spot"):
            return data
        group = SpotGroup.model_validate(data["spot"])
        prefix = group.name_prefix or str(data.get("name", "pool"))
        generated = [
            {"name": f"{prefix}-{zone.rsplit('-', 1)[-1]}-{n}", "zone": zone, "provisioning_model": "SPOT"}
            for zone in group.zones
            for n in range(1, group.per_zone + 1)
        ]
        # The group is consumed here, so a dumped config (vms listed in full) validates to the same pool.
        return {**data, "spot": None, "vms": [*generated, *list(data.get("vms") or [])]}

    @field_validator("preemption_notice")
    @classmethod
    def _whole_seconds(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and (value <= timedelta(0) or value.microseconds):
            raise ValueError("preemption_notice must be a positive whole number of seconds (GCE's Duration)")
        return value

    @field_validator("preemption_half_life")
    @classmethod
    def _positive_half_life(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("preemption_half_life must be positive (null: a plain count over the last 6 h)")
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> PoolSpec:
        if not self.vms:
            raise ValueError("a pool needs at least one VM (vms or spot)")
        if self.min_ready > self.max_ready:
            raise ValueError(f"min_ready ({self.min_ready}) must not exceed max_ready ({self.max_ready})")
        if self.max_ready > len(self.vms):
            raise ValueError(f"max_ready ({self.max_ready}) exceeds the pool's {len(self.vms)} VMs")
        names = [vm.name for vm in self.vms]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate VM names in vms: {', '.join(dupes)}")
        if self.fallback.enabled and not self.standard_vms:
            raise ValueError("fallback.enabled needs a VM with provisioning_model STANDARD in vms")
        return self

    @property
    def spot_vms(self) -> tuple[VmSpec, ...]:
        return tuple(vm for vm in self.vms if vm.provisioning_model is ProvisioningModel.SPOT)

    @property
    def standard_vms(self) -> tuple[VmSpec, ...]:
        return tuple(vm for vm in self.vms if vm.provisioning_model is ProvisioningModel.STANDARD)

    @property
    def zones(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(vm.zone for vm in self.vms))

    @property
    def model_names(self) -> tuple[str, ...]:
        """Every ``model`` value that routes to this pool."""
        return (self.model, *self.aliases)

    def vm(self, name: str) -> VmSpec | None:
        return next((vm for vm in self.vms if vm.name == name), None)


class Prices(_Strict):
    """USD per GPU-hour, used for cost reports. Defaults: published L4 rates (us-central1)."""

    spot_per_hour: float = Field(default=0.28, ge=0)
    standard_per_hour: float = Field(default=0.71, ge=0)
    overflow_per_hour: float = Field(default=0.80, ge=0)


class SandboxSpec(_Strict):
    """How the local sandbox simulates this fleet (ignored in GCP). Delays are in simulated time."""

    speedup: float = Field(default=1.0, ge=1.0, le=1000.0)  # 30 makes a 60 s boot take 2 s
    boot_delay: Duration = timedelta(seconds=60)  # TERMINATED -> RUNNING
    load_delay: Duration = timedelta(seconds=30)  # RUNNING -> /health 200
    stop_delay: Duration = timedelta(seconds=10)  # STOPPING -> TERMINATED
    preempt_notice: Duration = timedelta(seconds=30)  # preemption: RUNNING -> STOPPING -> TERMINATED
    time_to_first_token: Duration = timedelta(milliseconds=200)
    tokens_per_second: float = Field(default=50.0, gt=0)
    overflow_cold_start: Duration = timedelta(seconds=20)


class FleetConfig(_Strict):
    """The whole fleet: every pool, plus project-wide facts."""

    project: str = Field(default="spotgate-local", pattern=r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
    region: str = Field(default="us-central1", pattern=REGION)
    # More regions of the same VPC where pools may place VMs (DESIGN §2.1: VPC networks are global, so the
    # gateway's connector reaches their private IPs; spreading over regions cuts correlated preemptions). The
    # gateway and the functions stay in ``region``; Terraform gives each of these a subnet and a Cloud NAT.
    regions: tuple[Annotated[str, Field(pattern=REGION)], ...] = ()
    pools: tuple[PoolSpec, ...] = Field(min_length=1)
    prices: Prices = Prices()
    sandbox: SandboxSpec = SandboxSpec()

    @model_validator(mode="after")
    def _check_unique(self) -> FleetConfig:
        _reject_duplicates("pools", [p.name for p in self.pools])
        owners: dict[str, str] = {}
        for pool in self.pools:
            for vm in pool.vms:
                if vm.name in owners:
                    raise ValueError(
                        f"pools.{pool.name}.vms: VM {vm.name!r} already belongs to pool {owners[vm.name]!r}"
                    )
                owners[vm.name] = pool.name
        _reject_duplicates("model names and aliases", [m for p in self.pools for m in p.model_names])
        allowed = {self.region, *self.regions}
        for pool in self.pools:
            wrong = [z for z in pool.zones if z.rsplit("-", 1)[0] not in allowed]
            if wrong:
                where = ", ".join(repr(r) for r in sorted(allowed))
                raise ValueError(
                    f"pools.{pool.name}.vms: zone {wrong[0]!r} is not in region {where} (list more in 'regions')"
                )
        return self

    def pool(self, name: str) -> PoolSpec | None:
        return next((p for p in self.pools if p.name == name), None)

    def pool_for_model(self, model: str) -> PoolSpec | None:
        return next((p for p in self.pools if model in p.model_names), None)

    def pool_of_instance(self, instance: str) -> PoolSpec | None:
        return next((p for p in self.pools if p.vm(instance) is not None), None)


def _reject_duplicates(what: str, values: list[str]) -> None:
    dupes = sorted({v for v in values if values.count(v) > 1})
    if dupes:
        raise ValueError(f"duplicate {what}: {', '.join(dupes)}")


def format_validation_error(source: str, error: ValidationError) -> str:
    """One line per problem, each naming the field path (``pools.0.min_ready: …``)."""
    lines = []
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"]) or "(top level)"
        msg = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"  {loc}: {msg}")
    return f"invalid fleet config {source}:\n" + "\n".join(lines)


def parse_fleet(data: object, source: str = "(inline)") -> FleetConfig:
    """Validate already-decoded YAML/JSON. Raises ConfigError naming each bad field."""
    try:
        return FleetConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(source, e)) from None


def load_fleet(path: str | Path) -> FleetConfig:
    """Read a YAML or JSON fleet file. Raises ConfigError (unreadable, malformed, or invalid)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read fleet config {file}: {e.strerror}") from None
    try:
        data = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"fleet config {file} is not valid {file.suffix.lstrip('.') or 'YAML'}: {e}") from None
    return parse_fleet(data, str(file))
