"""The rules spotgate's Terraform must keep, as functions from a parsed tree to a list of violations.

Each check returns human-readable violations (empty = the rule holds). The same functions run on the real
``infra/`` and on deliberately broken copies of it, which proves each rule actually catches what it names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from tests.infra.provider_schema import check_tree
from tests.infra.terraform_tree import Block, TerraformTree, first

IAP_RANGE = "35.235.240.0/20"
COMPUTE_METHODS = (
    "compute.instances.preempted",
    "compute.instances.hostError",
    "compute.instances.terminateOnHostMaintenance",
    "compute.instances.guestTerminate",
    "compute.instances.automaticRestart",
)
SPOT_SCHEDULING = {
    "preemptible": True,
    "automatic_restart": False,
    "on_host_maintenance": "TERMINATE",
    "instance_termination_action": "STOP",
}
PRIMITIVE_ROLE = re.compile(r"roles/(owner|editor|viewer)\b")
MODULE_FILES = ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md")
PINNED_VERSION = re.compile(r"^(~>\s*\d+\.\d+|=\s*\d+\.\d+\.\d+|>=\s*\d+\.\d+(\.\d+)?,\s*<\s*\d+)")

Check = Callable[[TerraformTree], list[str]]


def _instances(tree: TerraformTree) -> Iterator[Block]:
    yield from tree.resources("google_compute_instance")


def vms_have_no_external_ip(tree: TerraformTree) -> list[str]:
    """No VM gets a public address: no access_config on any network interface."""
    return [
        f"{vm.address}: network_interface has {key} (an external IP)"
        for vm in _instances(tree)
        for nic in vm.body.get("network_interface", [])
        for key in ("access_config", "ipv6_access_config")
        if key in nic
    ]


def vms_are_spot_gpu_vms(tree: TerraformTree) -> list[str]:
    """SPOT scheduling fields exact; every VM has an L4, TERMINATE on maintenance, the pool label, scripts."""
    violations: list[str] = []
    for vm in _instances(tree):
        scheduling = first(vm.body.get("scheduling"))
        model = scheduling.get("provisioning_model")
        if model not in ("SPOT", "STANDARD"):
            violations.append(f"{vm.address}: provisioning_model must be a literal SPOT or STANDARD, got {model!r}")
        if model == "SPOT":
            violations += [
                f"{vm.address}: SPOT needs {field} = {json.dumps(want)}, got {json.dumps(scheduling.get(field))}"
                for field, want in SPOT_SCHEDULING.items()
                if scheduling.get(field) != want
            ]
        if scheduling.get("on_host_maintenance") != "TERMINATE":
            violations.append(f"{vm.address}: GPU VMs cannot live-migrate; on_host_maintenance must be TERMINATE")
        if "guest_accelerator" not in vm.body:
            violations.append(f"{vm.address}: no guest_accelerator (GPU)")
        if "spotgate-pool" not in tree.expression_text(vm.body.get("labels"), vm.module_dir):
            violations.append(f"{vm.address}: labels lack spotgate-pool (the control plane selects VMs by it)")
        metadata = vm.body.get("metadata", {})
        missing = [
            k for k in ("startup-script", "shutdown-script") if not isinstance(metadata, dict) or k not in metadata
        ]
        violations += [f"{vm.address}: metadata lacks {k}" for k in missing]
        ignored = [
            str(i).removeprefix("${").removesuffix("}")
            for i in first(vm.body.get("lifecycle")).get("ignore_changes", [])
        ]
        if "desired_status" not in ignored:
            violations.append(f"{vm.address}: lifecycle must ignore desired_status (the control plane owns it)")
    return violations


def _ports(rule: Block, tree: TerraformTree) -> str:
    return tree.expression_text(rule.body.get("allow", []), rule.module_dir).replace('\\"', '"')


def firewalls_are_narrow(tree: TerraformTree) -> list[str]:
    """Ingress never from anywhere; SSH only from IAP; every rule targets specific VMs."""
    violations: list[str] = []
    for rule in tree.resources("google_compute_firewall"):
        sources = tree.resolve(rule.body.get("source_ranges"), rule.module_dir)
        text = tree.expression_text(rule.body.get("source_ranges"), rule.module_dir)
        if sources in (None, [], "") and rule.body.get("direction", "INGRESS") == "INGRESS":
            violations.append(f"{rule.address}: ingress rule without source_ranges")
        if "0.0.0.0/0" in text or "::/0" in text:
            violations.append(f"{rule.address}: source_ranges include the whole internet")
        if '"22"' in _ports(rule, tree) and sources != [IAP_RANGE]:
            violations.append(f"{rule.address}: SSH (22) must be open to exactly the IAP range, got {sources!r}")
        if not ({"target_service_accounts", "target_tags"} & rule.body.keys()):
            violations.append(f"{rule.address}: no target_service_accounts/target_tags (applies to every VM)")
    return violations


def sink_forwards_system_events(tree: TerraformTree) -> list[str]:
    """A log sink filters the system_event log for gce_instance and the five methods, with its own identity."""
    sinks = tree.resources("google_logging_project_sink")
    if not sinks:
        return ["no google_logging_project_sink"]
    violations: list[str] = []
    for sink in sinks:
        text = tree.expression_text(sink.body.get("filter"), sink.module_dir)
        needed = ("cloudaudit.googleapis.com%2Fsystem_event", "gce_instance", *COMPUTE_METHODS)
        violations += [f"{sink.address}: filter does not name {n}" for n in needed if n not in text]
        if sink.body.get("unique_writer_identity") is not True:
            violations.append(f"{sink.address}: unique_writer_identity must be true")
        if not str(sink.body.get("destination", "")).startswith("pubsub.googleapis.com/"):
            violations.append(f"{sink.address}: destination must be a Pub/Sub topic")
        writer = f"google_logging_project_sink.{sink.labels[1]}.writer_identity"
        grants = [
            g
            for g in tree.resources("google_pubsub_topic_iam_member")
            if writer in str(g.body.get("member")) and g.body.get("role") == "roles/pubsub.publisher"
        ]
        if not grants:
            violations.append(f"{sink.address}: its writer identity has no roles/pubsub.publisher grant")
    return violations


def functions_are_pubsub_triggered_with_retry(tree: TerraformTree) -> list[str]:
    """Every function: Python 3.12, an Eventarc Pub/Sub trigger with retries and its own service account."""
    functions = tree.resources("google_cloudfunctions2_function")
    if not functions:
        return ["no google_cloudfunctions2_function"]
    violations: list[str] = []
    for function in functions:
        trigger = first(function.body.get("event_trigger"))
        expected = {
            "event_type": "google.cloud.pubsub.topic.v1.messagePublished",
            "retry_policy": "RETRY_POLICY_RETRY",
        }
        violations += [
            f"{function.address}: event_trigger.{k} must be {v}, got {trigger.get(k)!r}"
            for k, v in expected.items()
            if trigger.get(k) != v
        ]
        violations += [
            f"{function.address}: event_trigger.{k} missing"
            for k in ("pubsub_topic", "service_account_email")
            if not trigger.get(k)
        ]
        if first(function.body.get("build_config")).get("runtime") != "python312":
            violations.append(f"{function.address}: runtime must be python312")
    return violations


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def no_primitive_roles(tree: TerraformTree) -> list[str]:
    """roles/owner, roles/editor and roles/viewer appear nowhere."""
    return [
        f"{path.relative_to(tree.root)}: primitive role in {text[:80]!r}"
        for path, parsed in tree.files.items()
        for text in _strings(parsed)
        if PRIMITIVE_ROLE.search(text)
    ]


def variables_are_typed_and_described(tree: TerraformTree) -> list[str]:
    return [
        f"{v.address}: missing {field}"
        for v in tree.blocks("variable")
        for field in ("type", "description")
        if not str(v.body.get(field, "")).strip()
    ]


def outputs_are_described(tree: TerraformTree) -> list[str]:
    return [f"{o.address}: missing description" for o in tree.blocks("output") if not o.body.get("description")]


def providers_are_pinned(tree: TerraformTree) -> list[str]:
    """Each module pins Terraform and every provider it uses to a bounded version range."""
    violations: list[str] = []
    for directory in tree.module_dirs():
        settings = [
            t for path, parsed in tree.files.items() if path.parent == directory for t in parsed.get("terraform", [])
        ]
        if not any(t.get("required_version") for t in settings):
            violations.append(f"{directory.name}: no required_version")
        providers = {
            name: spec for t in settings for entry in t.get("required_providers", []) for name, spec in entry.items()
        }
        violations += [
            f"{directory.name}: provider {name} version {spec.get('version')!r} is not pinned"
            for name, spec in providers.items()
            if not PINNED_VERSION.match(str(spec.get("version", "")))
        ]
        used = {
            b.labels[0].split("_", 1)[0]
            for kind in ("resource", "data")
            for b in tree.blocks(kind)
            if b.module_dir == directory
        }
        violations += [
            f"{directory.name}: uses provider {p} without pinning it" for p in sorted(used - providers.keys())
        ]
    return violations


def modules_are_complete(tree: TerraformTree) -> list[str]:
    """Every module has main/variables/outputs/versions/README, and its README names every input and output."""
    violations: list[str] = []
    for directory in tree.module_dirs():
        violations += [f"{directory.name}: missing {f}" for f in MODULE_FILES if not (directory / f).is_file()]
        readme = directory / "README.md"
        text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
        names = [b.labels[0] for kind in ("variable", "output") for b in tree.blocks(kind) if b.module_dir == directory]
        violations += [f"{directory.name}/README.md does not document `{n}`" for n in names if f"`{n}`" not in text]
    return violations


def overflow_is_left_to_the_control_plane(tree: TerraformTree) -> list[str]:
    """GPU Cloud Run services: an L4, scale to zero, and Terraform ignores the min instances the control plane sets."""
    violations: list[str] = []
    for service in tree.resources("google_cloud_run_v2_service"):
        template = first(service.body.get("template"))
        if "node_selector" not in template:
            continue
        if first(template.get("node_selector")).get("accelerator") != "nvidia-l4":
            violations.append(f"{service.address}: node_selector accelerator must be nvidia-l4")
        limits = first(first(template.get("containers")).get("resources")).get("limits", {})
        if limits.get("nvidia.com/gpu") != "1":
            violations.append(f"{service.address}: needs limits nvidia.com/gpu = 1")
        if first(service.body.get("scaling")).get("min_instance_count") != 0:
            violations.append(f"{service.address}: service-level min_instance_count must start at 0")
        ignored = first(service.body.get("lifecycle")).get("ignore_changes", [])
        if "scaling[0].min_instance_count" not in [str(i).removeprefix("${").removesuffix("}") for i in ignored]:
            violations.append(f"{service.address}: lifecycle must ignore scaling[0].min_instance_count")
    return violations


def public_access_is_only_the_gateway(tree: TerraformTree) -> list[str]:
    """allUsers may only invoke the gateway; nothing else is public."""
    violations: list[str] = []
    for kind in (
        "google_cloud_run_v2_service_iam_member",
        "google_project_iam_member",
        "google_storage_bucket_iam_member",
        "google_pubsub_topic_iam_member",
        "google_cloud_run_v2_service_iam_binding",
    ):
        for grant in tree.resources(kind):
            members = json.dumps([grant.body.get("member"), grant.body.get("members")])
            if "allUsers" not in members and "allAuthenticatedUsers" not in members:
                continue
            is_gateway = grant.module_dir.name == "gateway" and grant.body.get("role") == "roles/run.invoker"
            if not is_gateway or "allAuthenticatedUsers" in members:
                violations.append(f"{grant.address}: public grant outside the gateway's run.invoker")
    return violations


def scheduler_ticks(tree: TerraformTree) -> list[str]:
    """A Scheduler job publishes {"v": 1, "kind": "tick"} to the control topic."""
    jobs = tree.resources("google_cloud_scheduler_job")
    ticks = [
        j
        for j in jobs
        if 'kind = "tick"' in json.dumps(first(j.body.get("pubsub_target")).get("data")).replace('\\"', '"')
    ]
    return [] if ticks else ["no Scheduler job publishes a tick"]


def google_blocks_match_provider_schema(tree: TerraformTree) -> list[str]:
    """Every google_* resource/data block uses only names the provider (6.50.0) knows, nested where it says,
    with every required argument (what ``terraform validate`` would check first; see provider_schema.py)."""
    return check_tree(tree.root)


CHECKS: dict[str, Check] = {
    check.__name__: check
    for check in (
        vms_have_no_external_ip,
        vms_are_spot_gpu_vms,
        firewalls_are_narrow,
        sink_forwards_system_events,
        functions_are_pubsub_triggered_with_retry,
        no_primitive_roles,
        variables_are_typed_and_described,
        outputs_are_described,
        providers_are_pinned,
        modules_are_complete,
        overflow_is_left_to_the_control_plane,
        public_access_is_only_the_gateway,
        scheduler_ticks,
        google_blocks_match_provider_schema,
    )
}
