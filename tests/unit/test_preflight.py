"""Preflight's pure part: what a deployment needs, and each check's verdict, message and fix (tables)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from spotgate.preflight.checks import CheckResult, Observed, Policy, Quota, Status, evaluate
from spotgate.preflight.deployment import Deployment, HostVm, PoolHosts
from spotgate.preflight.needs import APIS_BEFORE_APPLY, needs_of
from spotgate.preflight.probe import _policy

FAMILY = ("deeplearning-platform-release", "common-cu124-debian-11-py310")


def a_pool(name: str, spot: int, standard: int = 0, **changes: Any) -> PoolHosts:
    vms = [HostVm(f"{name}-s{i}", "us-central1-a", True) for i in range(spot)]
    vms += [HostVm(f"{name}-o{i}", "us-central1-b", False) for i in range(standard)]
    pool = PoolHosts(name, tuple(vms), 1, "g2-standard-8", 1, *FAMILY, None, 0)
    return replace(pool, **changes)


def a_deployment(*pools: PoolHosts, grant: bool = False, region: str = "us-central1") -> Deployment:
    chat = a_pool("chat", 3, 1, max_ready=2, overflow_gpu="nvidia-l4", overflow_max_instances=2)
    return Deployment("p", region, pools or (chat, a_pool("embed", 1, machine_type="g2-standard-4")), grant)


def test_needs_of_the_example_deployment() -> None:
    needs = needs_of(a_deployment())

    assert [(q.metric, q.at_creation, q.at_max_ready) for q in needs.quotas] == [
        ("PREEMPTIBLE_NVIDIA_L4_GPUS", 4, 3),
        ("NVIDIA_L4_GPUS", 1, 1),
        ("GPUS_ALL_REGIONS", 5, 4),
    ]
    assert needs.images == (FAMILY,)
    assert needs.machine_types == (
        ("us-central1-a", "g2-standard-4"),
        ("us-central1-a", "g2-standard-8"),
        ("us-central1-b", "g2-standard-8"),
    )
    assert needs.cloud_run_gpus == ("nvidia-l4",)
    assert needs.cloud_run_gpu_instances == 2


def test_gpu_count_multiplies_and_a_pool_without_standard_vms_needs_no_on_demand_quota() -> None:
    needs = needs_of(a_deployment(a_pool("big", 2, machine_type="g2-standard-24", gpu_count=2, max_ready=1)))

    assert [(q.metric, q.at_creation, q.at_max_ready) for q in needs.quotas] == [
        ("PREEMPTIBLE_NVIDIA_L4_GPUS", 4, 2),
        ("GPUS_ALL_REGIONS", 4, 2),
    ]


def everything_there(deployment: Deployment) -> Observed:
    needs = needs_of(deployment)
    plenty = {m: Quota(16, 0) for m in ("PREEMPTIBLE_NVIDIA_L4_GPUS", "NVIDIA_L4_GPUS")}
    return Observed(
        enabled_apis=frozenset(APIS_BEFORE_APPLY),
        region_quotas=plenty,
        project_quotas={"GPUS_ALL_REGIONS": Quota(16, 0)},
        images={FAMILY: "common-cu124-v20250325-debian-11-py310"},
        machine_types=dict.fromkeys(needs.machine_types, True),
    )


def verdicts(deployment: Deployment, observed: Observed) -> dict[str, CheckResult]:
    return {r.check: r for r in evaluate(deployment, needs_of(deployment), observed)}


def test_everything_in_place_passes() -> None:
    deployment = a_deployment()

    results = verdicts(deployment, everything_there(deployment))

    assert {r.status for r in results.values()} == {Status.PASS}
    assert len(results) == 4 + 6 + 1 + 3 + 1 + 3  # APIs, quotas, image, machine types, Cloud Run, policies


CASES = [
    pytest.param(
        lambda o: replace(o, region_quotas={**o.region_quotas, "PREEMPTIBLE_NVIDIA_L4_GPUS": Quota(3, 0)}),
        "quota PREEMPTIBLE_NVIDIA_L4_GPUS at creation",
        Status.FAIL,
        "-parallelism=1",
        id="spot-quota-covers-max-ready-only",
    ),
    pytest.param(
        lambda o: replace(o, project_quotas={"GPUS_ALL_REGIONS": Quota(8, 5)}),
        "quota GPUS_ALL_REGIONS at max_ready",
        Status.FAIL,
        "request more GPUS_ALL_REGIONS in all regions",
        id="global-gpus-used-elsewhere",
    ),
    pytest.param(
        lambda o: replace(o, enabled_apis=o.enabled_apis - {"cloudresourcemanager.googleapis.com"}),
        "API cloudresourcemanager.googleapis.com",
        Status.FAIL,
        "gcloud services enable cloudresourcemanager.googleapis.com --project p",
        id="resource-manager-off",
    ),
    pytest.param(
        lambda o: replace(o, images={FAMILY: None}),
        f"image family {FAMILY[0]}/{FAMILY[1]}",
        Status.FAIL,
        "set host.image_family",
        id="family-gone",
    ),
    pytest.param(
        lambda o: replace(o, errors={"quotas": "HTTP 403: Required 'compute.regions.get' permission"}),
        "GPU quota",
        Status.FAIL,
        "run preflight as a principal that can read it",
        id="quota-unreadable",
    ),
    pytest.param(
        lambda o: replace(o, policies={"run.managed.requireInvokerIam": Policy(enforced=True)}),
        "org policy run.managed.requireInvokerIam",
        Status.FAIL,
        "ask the org admin for an exception",
        id="invoker-iam-required",
    ),
    pytest.param(
        lambda o: replace(o, policies={"iam.allowedPolicyMemberDomains": Policy(allowed_values=("C0abc",))}),
        "org policy iam.allowedPolicyMemberDomains",
        Status.WARN,
        "allow Google service agents",
        id="domain-restricted-sharing-without-the-pubsub-grant",
    ),
    pytest.param(
        lambda o: replace(o, policies={"gcp.resourceLocations": Policy(allowed_values=("in:us-locations",))}),
        "org policy gcp.resourceLocations",
        Status.PASS,
        "",
        id="region-in-an-allowed-value-group",
    ),
    pytest.param(
        lambda o: replace(o, policies={"gcp.resourceLocations": Policy(allowed_values=("in:europe-locations",))}),
        "org policy gcp.resourceLocations",
        Status.FAIL,
        "deploy to an allowed region",
        id="region-outside-allowed-locations",
    ),
]


@pytest.mark.parametrize(("breakage", "check", "status", "fix"), CASES)
def test_each_condition_has_its_verdict_and_fix(breakage: Any, check: str, status: Status, fix: str) -> None:
    deployment = a_deployment()

    result = verdicts(deployment, breakage(everything_there(deployment)))[check]

    assert result.status is status, result
    assert fix in result.fix


def test_the_pubsub_grant_fails_under_domain_restricted_sharing() -> None:
    deployment = a_deployment(grant=True)
    observed = replace(
        everything_there(deployment), policies={"iam.allowedPolicyMemberDomains": Policy(allowed_values=("C0abc",))}
    )

    result = verdicts(deployment, observed)["org policy iam.allowedPolicyMemberDomains"]

    assert result.status is Status.FAIL
    assert "pubsub_token_creator_grant = false" in result.fix


def test_cloud_run_gpu_outside_its_regions_fails() -> None:
    deployment = a_deployment(region="us-west1")
    observed = everything_there(deployment)

    result = verdicts(deployment, observed)["Cloud Run nvidia-l4 in us-west1"]

    assert result.status is Status.FAIL
    assert "us-central1" in result.fix


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param({"name": "projects/1/policies/x", "spec": {}}, Policy(), id="no-policy"),
        pytest.param({"spec": {"rules": [{"enforce": True}]}}, Policy(enforced=True), id="boolean-enforced"),
        pytest.param({"spec": {"rules": [{"allowAll": True}]}}, Policy(), id="list-allow-all"),
        pytest.param(
            {"spec": {"rules": [{"values": {"allowedValues": ["C0abc", "C0def"]}}]}},
            Policy(allowed_values=("C0abc", "C0def")),
            id="list-restricted",
        ),
    ],
)
def test_effective_policies_are_read_like_the_org_policy_api_writes_them(body: Any, expected: Policy) -> None:
    assert _policy(body) == expected
