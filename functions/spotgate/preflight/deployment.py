"""What ``terraform apply`` will create, as plain values: the pools' VMs and hosts, read from ``var.pools``.

The input is the JSON Terraform itself evaluates from ``infra/variables.tf`` and the user's tfvars (defaults
applied, validations run), so preflight sizes exactly what the apply creates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spotgate.errors import ConfigError


@dataclass(frozen=True, slots=True)
class HostVm:
    name: str
    zone: str
    spot: bool


@dataclass(frozen=True, slots=True)
class PoolHosts:
    """One pool's VMs and what every one of them is made of."""

    name: str
    vms: tuple[HostVm, ...]
    max_ready: int
    machine_type: str
    gpu_count: int
    image_project: str
    image_family: str
    overflow_gpu: str | None  # Cloud Run GPU type of the pool's overflow service, None without one
    overflow_max_instances: int


@dataclass(frozen=True, slots=True)
class Deployment:
    project: str
    region: str
    pools: tuple[PoolHosts, ...]
    pubsub_token_creator_grant: bool


def parse_deployment(data: Mapping[str, Any]) -> Deployment:
    """The deployment from ``{project, region, pools, pool_vms, pubsub_token_creator_grant}``.

    Raises ConfigError naming the missing field.
    """
    try:
        return Deployment(
            project=str(data["project"]),
            region=str(data["region"]),
            pools=tuple(_pool(p, data["pool_vms"][p["name"]]) for p in data["pools"]),
            pubsub_token_creator_grant=bool(data.get("pubsub_token_creator_grant", False)),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"unexpected Terraform variables shape: {e!r}") from None


def _pool(pool: Mapping[str, Any], vms: list[Mapping[str, Any]]) -> PoolHosts:
    host, overflow = pool["host"], pool.get("overflow")
    return PoolHosts(
        name=str(pool["name"]),
        vms=tuple(HostVm(str(v["name"]), str(v["zone"]), v["provisioning_model"] == "SPOT") for v in vms),
        max_ready=int(pool["max_ready"]),
        machine_type=str(host["machine_type"]),
        gpu_count=int(host["gpu_count"]),
        image_project=str(host["image_project"]),
        image_family=str(host["image_family"]),
        overflow_gpu=str(overflow["gpu_type"]) if overflow else None,
        overflow_max_instances=int(overflow["max_instances"]) if overflow else 0,
    )
