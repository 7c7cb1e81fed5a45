"""Each invariant catches the mistake it names: break a copy of infra/ on purpose and watch the check fail."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.infra.invariants import CHECKS
from tests.infra.terraform_tree import INFRA, load_tree


@dataclass(frozen=True, slots=True)
class Breakage:
    file: str  # relative to infra/
    old: str  # replaced once: the first occurrence (the SPOT VM when a snippet appears in both VM resources)
    new: str
    check: str
    expect: str  # a fragment of the violation message


VM_LOGGING = (
    '    "vm/logging"         = { account = google_service_account.vm.email, role = "roles/logging.logWriter" }\n'
)

BREAKAGES = [
    pytest.param(
        Breakage(
            "modules/network/main.tf",
            "name                    = google_compute_subnetwork.vms_elsewhere[each.key].id",
            "name                    = google_compute_subnetwork.vms.id",
            "vm_subnets_have_nat_and_private_access",
            "vms_elsewhere: no Cloud NAT",
        ),
        id="further-region-without-nat",
    ),
    pytest.param(
        Breakage(
            "modules/gpu_pool/main.tf",
            "  network_interface {\n    subnetwork = local.subnetwork[each.key]\n  }",
            "  network_interface {\n    subnetwork = local.subnetwork[each.key]\n    access_config {}\n  }",
            "vms_have_no_external_ip",
            "external IP",
        ),
        id="external-ip-on-a-vm",
    ),
    pytest.param(
        Breakage(
            "modules/gpu_pool/main.tf",
            "preemptible                 = true\n    automatic_restart           = false",
            "preemptible                 = true\n    automatic_restart           = true",
            "vms_are_spot_gpu_vms",
            "automatic_restart",
        ),
        id="automatic-restart-on-spot",
    ),
    pytest.param(
        Breakage(
            "modules/gpu_pool/main.tf",
            '    instance_termination_action = "STOP"\n',
            '    instance_termination_action = "DELETE"\n',
            "vms_are_spot_gpu_vms",
            "instance_termination_action",
        ),
        id="spot-vm-deleted-on-preemption",
    ),
    pytest.param(
        Breakage(
            "modules/gpu_pool/main.tf",
            "    ignore_changes = [desired_status]\n",
            "",
            "vms_are_spot_gpu_vms",
            "desired_status",
        ),
        id="terraform-fights-the-control-plane",
    ),
    pytest.param(
        Breakage(
            "modules/network/main.tf",
            "source_ranges           = local.gateway_egress_ranges",
            'source_ranges           = ["0.0.0.0/0"]',
            "firewalls_are_narrow",
            "whole internet",
        ),
        id="engine-port-open-to-the-internet",
    ),
    pytest.param(
        Breakage(
            "modules/network/main.tf",
            "source_ranges           = [local.iap_range]",
            'source_ranges           = [local.iap_range, "10.0.0.0/8"]',
            "firewalls_are_narrow",
            "SSH (22)",
        ),
        id="ssh-open-beyond-iap",
    ),
    pytest.param(
        Breakage(
            "modules/control_plane/main.tf",
            '    "compute.instances.guestTerminate",\n',
            "",
            "sink_forwards_system_events",
            "compute.instances.guestTerminate",
        ),
        id="sink-misses-a-method",
    ),
    pytest.param(
        Breakage(
            "modules/control_plane/main.tf",
            "%2Fsystem_event",
            "%2Factivity",
            "sink_forwards_system_events",
            "system_event",
        ),
        id="sink-reads-the-wrong-log",
    ),
    pytest.param(
        Breakage(
            "modules/control_plane/main.tf",
            'retry_policy          = "RETRY_POLICY_RETRY"',
            'retry_policy          = "RETRY_POLICY_DO_NOT_RETRY"',
            "functions_are_pubsub_triggered_with_retry",
            "retry_policy",
        ),
        id="function-without-retry",
    ),
    pytest.param(
        Breakage(
            "iam.tf",
            VM_LOGGING.strip(),
            VM_LOGGING.strip().replace("roles/logging.logWriter", "roles/editor"),
            "no_primitive_roles",
            "primitive role",
        ),
        id="primitive-role",
    ),
    pytest.param(
        Breakage(
            "modules/store/variables.tf",
            '  type        = string\n  description = "Project ID that owns the database."',
            '  description = "Project ID that owns the database."',
            "variables_are_typed_and_described",
            "missing type",
        ),
        id="untyped-variable",
    ),
    pytest.param(
        Breakage(
            "modules/store/outputs.tf",
            '  description = "Full resource name projects/P/databases/D, used in IAM conditions."\n',
            "",
            "outputs_are_described",
            "missing description",
        ),
        id="undescribed-output",
    ),
    pytest.param(
        Breakage(
            "modules/overflow/versions.tf",
            '      version = "~> 6.40"\n',
            "",
            "providers_are_pinned",
            "not pinned",
        ),
        id="unpinned-provider",
    ),
    pytest.param(
        Breakage(
            "modules/overflow/main.tf",
            "    ignore_changes = [scaling[0].min_instance_count]\n",
            "",
            "overflow_is_left_to_the_control_plane",
            "min_instance_count",
        ),
        id="terraform-cools-a-warm-overflow",
    ),
    pytest.param(
        Breakage(
            "modules/overflow/main.tf",
            "  member   = var.invoker\n",
            '  member   = "allUsers"\n',
            "public_access_is_only_the_gateway",
            "public grant",
        ),
        id="public-overflow",
    ),
    pytest.param(
        Breakage(
            "modules/gpu_pool/main.tf",
            "    preemptible                 = true\n",
            "    premptible                  = true\n",
            "google_blocks_match_provider_schema",
            "spot.scheduling.premptible: unknown argument or block premptible",
        ),
        id="misspelled-argument",
    ),
    pytest.param(
        Breakage(
            "modules/store/main.tf",
            "  location_id                       = var.location\n",
            "",
            "google_blocks_match_provider_schema",
            "google_firestore_database.store: missing required argument location_id",
        ),
        id="missing-required-argument",
    ),
    pytest.param(
        Breakage(
            "modules/gpu_pool/main.tf",
            "  network_interface {\n    subnetwork = local.subnetwork[each.key]\n  }",
            "  subnetwork = var.subnetwork",
            "google_blocks_match_provider_schema",
            "missing required block network_interface",
        ),
        id="argument-outside-its-block",
    ),
    pytest.param(
        Breakage(
            "modules/gpu_pool/main.tf",
            "  scheduling {",
            "  scheduling = {",
            "google_blocks_match_provider_schema",
            "scheduling is a block, written as an argument",
        ),
        id="block-written-as-an-argument",
    ),
    pytest.param(
        Breakage(
            "modules/gateway/main.tf",
            "  invoker_iam_disabled = true\n",
            "",
            "public_access_is_only_the_gateway",
            "invoker_iam_disabled must be true",
        ),
        id="gateway-behind-invoker-iam",
    ),
    pytest.param(
        Breakage(
            "iam.tf",
            "  count = var.pubsub_token_creator_grant ? 1 : 0\n",
            "",
            "service_agent_grants_are_optional",
            "must be optional",
        ),
        id="unconditional-service-agent-grant",
    ),
    pytest.param(
        Breakage(
            "modules/gateway/main.tf",
            "      template[0].annotations,\n",
            "",
            "gateway_ignores_what_cloud_build_sets",
            "lifecycle must ignore template[0].annotations",
        ),
        id="gateway-drifts-on-every-apply",
    ),
    pytest.param(
        Breakage(
            "modules/gpu_pool/main.tf",
            "  allow_stopping_for_update = false\n",
            "  allow_stopping_for_update = true\n",
            "vms_are_spot_gpu_vms",
            "allow_stopping_for_update",
        ),
        id="terraform-stops-a-serving-vm",
    ),
    pytest.param(
        Breakage(
            "iam.tf",
            "    overflow = google_service_account.overflow.email\n"
            "    vm       = google_service_account.vm.email\n  }\n\n  project    = var.project",
            "    overflow = google_service_account.overflow.email\n  }\n\n  project    = var.project",
            "vms_can_pull_from_the_repository",
            "no roles/artifactregistry.reader",
        ),
        id="vm-cannot-pull-from-the-repository",
    ),
    pytest.param(
        Breakage(
            "modules/artifacts/main.tf",
            "  lifecycle_rule {\n",
            "  lifecycle_rule {\n    condition {\n      age = 90\n    }\n    action {\n"
            '      type          = "SetStorageClass"\n      storage_class = "NEARLINE"\n'
            "    }\n  }\n\n  lifecycle_rule {\n",
            "served_weights_stay_standard",
            "changes the storage class",
        ),
        id="served-weights-to-nearline",
    ),
    pytest.param(
        Breakage(
            "iam.tf",
            VM_LOGGING,
            VM_LOGGING + '    "builder/images" = { account = google_service_account.builder.email, '
            'role = "roles/artifactregistry.writer" }\n',
            "data_roles_on_the_project_are_conditioned",
            "without an IAM condition",
        ),
        id="builder-writes-every-repository",
    ),
    pytest.param(
        Breakage(
            "iam.tf",
            '  display_name = "spotgate GPU VMs (agent: publish ready/draining, read weights)"\n\n'
            "  depends_on = [google_project_service.apis]\n",
            '  display_name = "spotgate GPU VMs (agent: publish ready/draining, read weights)"\n',
            "identities_wait_for_their_apis",
            "needs depends_on",
        ),
        id="service-account-before-iam-api",
    ),
    pytest.param(
        Breakage(
            "apis.tf",
            '    "cloudresourcemanager.googleapis.com",\n',
            "",
            "required_apis_are_enabled",
            "cloudresourcemanager.googleapis.com",
        ),
        id="resource-manager-api-disabled",
    ),
    pytest.param(
        Breakage(
            "modules/control_plane/main.tf",
            "each.value.service_config[0].service",
            "each.value.name",
            "function_services_are_named_by_the_function",
            "service_config[0].service",
        ),
        id="function-service-assumed-to-share-its-name",
    ),
    pytest.param(
        Breakage(
            "modules/observability/main.tf",
            "  notification_channels = var.notification_channels\n",
            "",
            "operators_are_told",
            "must notify var.notification_channels",
        ),
        id="alert-that-notifies-nobody",
    ),
    pytest.param(
        Breakage(
            "modules/observability/main.tf",
            "    gateway-5xx = {",
            "    gateway-errors = {",
            "operators_are_told",
            "no google_monitoring_alert_policy gateway-5xx",
        ),
        id="gateway-5xx-alert-missing",
    ),
    pytest.param(
        Breakage(
            "main.tf",
            "notification_channels = var.alerts.notification_channels",
            "notification_channels = []",
            "operators_are_told",
            "must pass var.alerts.notification_channels",
        ),
        id="channels-not-wired",
    ),
]


@pytest.fixture
def infra_copy(tmp_path: Path) -> Path:
    target = tmp_path / "infra"
    shutil.copytree(INFRA, target, ignore=shutil.ignore_patterns(".terraform", ".build"))
    return target


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_breakage_is_caught(infra_copy: Path, breakage: Breakage) -> None:
    path = infra_copy / breakage.file
    text = path.read_text(encoding="utf-8")
    assert breakage.old in text, f"{breakage.file} changed: the breakage no longer applies"
    path.write_text(text.replace(breakage.old, breakage.new, 1), encoding="utf-8")  # the first (SPOT) block

    violations = CHECKS[breakage.check](load_tree(infra_copy))

    assert any(breakage.expect in v for v in violations), violations


def test_an_unbroken_copy_passes_every_check(infra_copy: Path) -> None:
    tree = load_tree(infra_copy)
    assert {name: check(tree) for name, check in CHECKS.items()} == {name: [] for name in CHECKS}
