"""Needs against what the project has: one result per check, each failure with its own message and fix.

``Observed`` is what the probe read (or could not read: ``errors`` by check); ``evaluate`` is pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from spotgate.preflight.deployment import Deployment
from spotgate.preflight.needs import (
    APIS_BEFORE_APPLY,
    CLOUD_RUN_GPU_REGIONS,
    DOMAIN_RESTRICTED_SHARING,
    REQUIRE_INVOKER_IAM,
    RESOURCE_LOCATIONS,
    Needs,
    QuotaNeed,
)


class Status(StrEnum):
    PASS = "PASS"  # noqa: S105 (a check result, not a password)
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Quota:
    limit: float
    usage: float

    @property
    def available(self) -> float:
        return self.limit - self.usage


@dataclass(frozen=True, slots=True)
class Policy:
    """An effective org policy, reduced to what preflight reads: enforced (boolean constraints) and the allowed
    values of a list constraint (empty when it allows everything)."""

    enforced: bool = False
    allowed_values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Observed:
    enabled_apis: frozenset[str] = frozenset()
    region_quotas: Mapping[str, Quota] = field(default_factory=dict)
    project_quotas: Mapping[str, Quota] = field(default_factory=dict)
    images: Mapping[tuple[str, str], str | None] = field(default_factory=dict)  # None: no such family
    machine_types: Mapping[tuple[str, str], bool] = field(default_factory=dict)
    policies: Mapping[str, Policy] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)  # "apis", "quotas", "policies", ... -> what failed


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: str
    status: Status
    detail: str
    fix: str = ""


def evaluate(deployment: Deployment, needs: Needs, observed: Observed) -> list[CheckResult]:
    """Every check, in the order an operator fixes them (APIs first: the others read through them)."""
    return [
        *_apis(deployment, observed),
        *_quotas(deployment, needs, observed),
        *_images(needs, observed),
        *_machine_types(deployment, needs, observed),
        *_cloud_run_gpus(deployment, needs),
        *_policies(deployment, observed),
    ]


_DISABLED = ("SERVICE_DISABLED", "accessNotConfigured", "has not been used in project")


def _unread(check: str, observed: Observed, key: str) -> list[CheckResult]:
    error = observed.errors.get(key)
    if error is None:
        return []
    if any(marker in error for marker in _DISABLED):
        fix = "enable the API it needs first (see the API rows), then run preflight again"
    else:
        fix = "run preflight as a principal that can read it (e.g. Owner or Viewer on the project)"
    return [CheckResult(check, Status.FAIL, f"could not read: {error}", fix)]


def _apis(deployment: Deployment, observed: Observed) -> list[CheckResult]:
    if unread := _unread("APIs enabled", observed, "apis"):
        return unread
    return [
        CheckResult(f"API {api}", Status.PASS, "enabled")
        if api in observed.enabled_apis
        else CheckResult(
            f"API {api}",
            Status.FAIL,
            "disabled: Terraform needs it before it can enable the rest (and preflight reads quotas through it)",
            f"gcloud services enable {api} --project {deployment.project}",
        )
        for api in APIS_BEFORE_APPLY
    ]


def _quotas(deployment: Deployment, needs: Needs, observed: Observed) -> list[CheckResult]:
    if unread := _unread("GPU quota", observed, "quotas"):
        return unread
    results: list[CheckResult] = []
    for need in needs.quotas:
        quota = (observed.region_quotas if need.regional else observed.project_quotas).get(need.metric)
        available = quota.available if quota else 0.0
        for when, amount in (("at creation", need.at_creation), ("at max_ready", need.at_max_ready)):
            results.append(_quota_result(need, when, amount, available, deployment))
    return results


def _quota_result(need: QuotaNeed, when: str, amount: int, available: float, deployment: Deployment) -> CheckResult:
    scope = deployment.region if need.regional else "all regions"
    check = f"quota {need.metric} {when}"
    detail = f"need {amount}, {available:g} available in {scope}"
    if amount <= available:
        return CheckResult(check, Status.PASS, detail)
    fix = (
        f"request more {need.metric} in {scope} (console: IAM & Admin > Quotas & System Limits, project "
        f"{deployment.project})"
    )
    if when == "at creation":
        fix += "; or create the VMs one at a time: terraform apply -target=module.gpu_pool -parallelism=1"
    return CheckResult(check, Status.FAIL, detail, fix)


def _images(needs: Needs, observed: Observed) -> list[CheckResult]:
    if unread := _unread("boot image families", observed, "images"):
        return unread
    results: list[CheckResult] = []
    for project, family in needs.images:
        check = f"image family {project}/{family}"
        image = observed.images.get((project, family))
        if image:
            results.append(CheckResult(check, Status.PASS, f"resolves to {image}"))
            continue
        fix = (
            f"set host.image_family to an existing family (gcloud compute images list --project {project} "
            '--filter="family~common-cu" --format="value(family)" | sort -u)'
        )
        results.append(CheckResult(check, Status.FAIL, "no such image family (or it has no usable image)", fix))
    return results


def _machine_types(deployment: Deployment, needs: Needs, observed: Observed) -> list[CheckResult]:
    if unread := _unread("machine types", observed, "machine_types"):
        return unread
    return [
        CheckResult(f"machine type {machine} in {zone}", Status.PASS, "offered")
        if observed.machine_types.get((zone, machine))
        else CheckResult(
            f"machine type {machine} in {zone}",
            Status.FAIL,
            "not offered in this zone",
            f"move the pool's VMs to a zone that offers it (gcloud compute machine-types list "
            f'--filter="name={machine}" --project {deployment.project}) or pick another host.machine_type',
        )
        for zone, machine in needs.machine_types
    ]


def _cloud_run_gpus(deployment: Deployment, needs: Needs) -> list[CheckResult]:
    results: list[CheckResult] = []
    for gpu in needs.cloud_run_gpus:
        check = f"Cloud Run {gpu} in {deployment.region}"
        regions = CLOUD_RUN_GPU_REGIONS.get(gpu, frozenset())
        if deployment.region in regions:
            detail = f"offered (per the Cloud Run GPU docs); {needs.cloud_run_gpu_instances} instance(s) at most"
            fix = ""
            results.append(CheckResult(check, Status.PASS, detail, fix))
        else:
            fix = f"use a region that offers it ({', '.join(sorted(regions))}) or drop the pool's overflow"
            results.append(CheckResult(check, Status.FAIL, "not offered in this region (Cloud Run GPU docs)", fix))
    return results


def _policies(deployment: Deployment, observed: Observed) -> list[CheckResult]:
    if unread := _unread("org policies", observed, "policies"):
        return [CheckResult(r.check, Status.WARN, r.detail, r.fix) for r in unread]
    return [
        _domain_restricted_sharing(deployment, observed.policies.get(DOMAIN_RESTRICTED_SHARING, Policy())),
        _invoker_iam(observed.policies.get(REQUIRE_INVOKER_IAM, Policy())),
        _locations(deployment, observed.policies.get(RESOURCE_LOCATIONS, Policy())),
    ]


def _domain_restricted_sharing(deployment: Deployment, policy: Policy) -> CheckResult:
    check = f"org policy {DOMAIN_RESTRICTED_SHARING}"
    if not policy.allowed_values:
        return CheckResult(check, Status.PASS, "not restricted")
    if deployment.pubsub_token_creator_grant:
        return CheckResult(
            check,
            Status.FAIL,
            "domain-restricted sharing is enforced and pubsub_token_creator_grant = true grants a role to the Pub/Sub"
            " service agent",
            "set pubsub_token_creator_grant = false (only projects created before April 2021 need it), or ask the"
            " org admin to allow Google service agents for this project",
        )
    return CheckResult(
        check,
        Status.WARN,
        "domain-restricted sharing is enforced: nothing is granted to allUsers, but the log sink's writer identity"
        " (a Google service agent) gets roles/pubsub.publisher on the compute topic",
        "if the apply fails on that grant, ask the org admin to allow Google service agents for this project",
    )


def _invoker_iam(policy: Policy) -> CheckResult:
    check = f"org policy {REQUIRE_INVOKER_IAM}"
    if not policy.enforced:
        return CheckResult(check, Status.PASS, "not enforced")
    return CheckResult(
        check,
        Status.FAIL,
        "enforced: the gateway cannot turn off Cloud Run's invoker check, so API-key clients would get 403",
        "ask the org admin for an exception for this project (the gateway authenticates every request itself)",
    )


def _locations(deployment: Deployment, policy: Policy) -> CheckResult:
    check = f"org policy {RESOURCE_LOCATIONS}"
    region = deployment.region
    accepted = {region, f"in:{region}-locations", f"in:{region.split('-')[0]}-locations"}
    if not policy.allowed_values or accepted & set(policy.allowed_values):
        return CheckResult(check, Status.PASS, f"{region} allowed")
    return CheckResult(
        check,
        Status.FAIL,
        f"{region} is not among the allowed locations ({', '.join(policy.allowed_values)})",
        "deploy to an allowed region, or ask the org admin to allow this one",
    )
