"""What a deployment needs from its project: APIs, GPU quota (at creation and at ``max_ready``), boot image
families, machine types per zone, Cloud Run GPUs in the region, and the org policies that could refuse it.

Quota is counted twice because Compute Engine cannot create a stopped VM: ``terraform apply`` creates every VM
running (then stops it), so the first apply needs a GPU for every VM at once, while day to day only
``max_ready`` per pool (plus the STANDARD fallback VMs) ever run.
"""

from __future__ import annotations

from dataclasses import dataclass

from spotgate.preflight.deployment import Deployment

# Terraform enables these itself (infra/apis.tf), but only once it can run: Service Usage, Resource Manager and
# IAM must be on before the first plan (docs/deploy.md step 1), and preflight reads quotas through Compute.
APIS_BEFORE_APPLY = (
    "serviceusage.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "iam.googleapis.com",
    "compute.googleapis.com",
)
SPOT_L4 = "PREEMPTIBLE_NVIDIA_L4_GPUS"
STANDARD_L4 = "NVIDIA_L4_GPUS"
ALL_REGIONS = "GPUS_ALL_REGIONS"
L4 = "nvidia-l4"

# Cloud Run publishes no API that lists the regions offering each GPU; this is the Cloud Run GPU documentation's
# list ("Supported regions", services/gpu). Update it with the docs; preflight says where it came from.
CLOUD_RUN_GPU_REGIONS: dict[str, frozenset[str]] = {
    "nvidia-l4": frozenset(
        {"us-central1", "us-east4", "europe-west1", "europe-west4", "asia-southeast1", "asia-south1"}
    ),
    "nvidia-rtx-pro-6000": frozenset({"us-central1", "europe-west4"}),
}

DOMAIN_RESTRICTED_SHARING = "iam.allowedPolicyMemberDomains"
REQUIRE_INVOKER_IAM = "run.managed.requireInvokerIam"
RESOURCE_LOCATIONS = "gcp.resourceLocations"
CONSTRAINTS = (DOMAIN_RESTRICTED_SHARING, REQUIRE_INVOKER_IAM, RESOURCE_LOCATIONS)


@dataclass(frozen=True, slots=True)
class QuotaNeed:
    metric: str
    regional: bool  # False: a project-wide quota (GPUS_ALL_REGIONS)
    at_creation: int
    at_max_ready: int


@dataclass(frozen=True, slots=True)
class Needs:
    quotas: tuple[QuotaNeed, ...]
    images: tuple[tuple[str, str], ...]  # (image project, family)
    machine_types: tuple[tuple[str, str], ...]  # (zone, machine type)
    cloud_run_gpus: tuple[str, ...]
    cloud_run_gpu_instances: int


def needs_of(deployment: Deployment) -> Needs:
    """Everything ``deployment`` needs from its project."""
    spot = _gpus(deployment, spot=True)
    standard = _gpus(deployment, spot=False)
    quotas = (
        QuotaNeed(SPOT_L4, True, spot[0], spot[1]),
        QuotaNeed(STANDARD_L4, True, standard[0], standard[1]),
        QuotaNeed(ALL_REGIONS, False, spot[0] + standard[0], spot[1] + standard[1]),
    )
    pools = deployment.pools
    return Needs(
        quotas=tuple(q for q in quotas if q.at_creation > 0),
        images=tuple(sorted({(p.image_project, p.image_family) for p in pools})),
        machine_types=tuple(sorted({(vm.zone, p.machine_type) for p in pools for vm in p.vms})),
        cloud_run_gpus=tuple(sorted({p.overflow_gpu for p in pools if p.overflow_gpu})),
        cloud_run_gpu_instances=sum(p.overflow_max_instances for p in pools if p.overflow_gpu),
    )


def _gpus(deployment: Deployment, *, spot: bool) -> tuple[int, int]:
    """(GPUs of every such VM, GPUs of those that may run at once) over all pools."""
    at_creation = at_max_ready = 0
    for pool in deployment.pools:
        count = sum(1 for vm in pool.vms if vm.spot == spot)
        at_creation += count * pool.gpu_count
        # A STANDARD VM is a fallback that may run whenever SPOT capacity is gone; SPOT VMs run up to max_ready.
        at_max_ready += (min(count, pool.max_ready) if spot else count) * pool.gpu_count
    return at_creation, at_max_ready
