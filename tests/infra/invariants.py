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
        if vm.body.get("allow_stopping_for_update") is not False:
            violations.append(
                f"{vm.address}: allow_stopping_for_update must be false (Terraform never stops a serving VM)"
            )
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


CLOUD_RUN_GPUS = ("nvidia-l4", "nvidia-rtx-pro-6000")


def _variable_allows_only(tree: TerraformTree, block: Block, name: str, values: tuple[str, ...]) -> bool:
    """Whether variable ``name`` of ``block``'s module has a ``contains([...], var.name)`` validation listing
    exactly ``values`` (so every value it can take is a known one)."""
    for variable in tree.blocks("variable"):
        if variable.module_dir == block.module_dir and variable.labels[0] == name:
            text = json.dumps(variable.body.get("validation", [])).replace('\\"', '"')
            allowed = re.search(r"contains\(\[([^\]]*)\], var\." + name + r"\)", text)
            return bool(allowed) and set(re.findall(r'"([^"]+)"', allowed.group(1))) == set(values)
    return False


def overflow_is_left_to_the_control_plane(tree: TerraformTree) -> list[str]:
    """GPU Cloud Run services: a Cloud Run GPU, scale to zero, and Terraform ignores the min instances the control
    plane sets."""
    violations: list[str] = []
    for service in tree.resources("google_cloud_run_v2_service"):
        template = first(service.body.get("template"))
        if "node_selector" not in template:
            continue
        accelerator = first(template.get("node_selector")).get("accelerator")
        known = accelerator in CLOUD_RUN_GPUS or (
            accelerator == "${var.gpu_type}" and _variable_allows_only(tree, service, "gpu_type", CLOUD_RUN_GPUS)
        )
        if not known:
            violations.append(f"{service.address}: node_selector accelerator must be one of {CLOUD_RUN_GPUS}")
        limits = first(first(template.get("containers")).get("resources")).get("limits", {})
        if limits.get("nvidia.com/gpu") != "1":
            violations.append(f"{service.address}: needs limits nvidia.com/gpu = 1")
        if first(service.body.get("scaling")).get("min_instance_count") != 0:
            violations.append(f"{service.address}: service-level min_instance_count must start at 0")
        ignored = first(service.body.get("lifecycle")).get("ignore_changes", [])
        if "scaling[0].min_instance_count" not in [str(i).removeprefix("${").removesuffix("}") for i in ignored]:
            violations.append(f"{service.address}: lifecycle must ignore scaling[0].min_instance_count")
    return violations


def _grants(tree: TerraformTree) -> Iterator[Block]:
    for block in tree.blocks("resource"):
        if block.labels[0].endswith(("_iam_member", "_iam_binding", "_iam_policy")):
            yield block


def public_access_is_only_the_gateway(tree: TerraformTree) -> list[str]:
    """No grant to allUsers/allAuthenticatedUsers anywhere (the domain-restricted-sharing org policy refuses
    them); the gateway is reachable because its service turns the invoker IAM check off."""
    violations = [
        f"{grant.address}: public grant (allUsers/allAuthenticatedUsers)"
        for grant in _grants(tree)
        if "allUsers" in json.dumps(grant.body) or "allAuthenticatedUsers" in json.dumps(grant.body)
    ]
    gateways = [s for s in tree.resources("google_cloud_run_v2_service") if s.module_dir.name == "gateway"]
    violations += [
        f"{s.address}: invoker_iam_disabled must be true (API-key clients carry no Google identity)"
        for s in gateways
        if s.body.get("invoker_iam_disabled") is not True
    ]
    return violations if gateways else [*violations, "no gateway service"]


def service_agent_grants_are_optional(tree: TerraformTree) -> list[str]:
    """A grant naming a Google service agent (…@gcp-sa-….iam.gserviceaccount.com) may be refused by the
    domain-restricted-sharing org policy, so it must be switchable (count) rather than unconditional."""
    return [
        f"{grant.address}: grant to a Google service agent must be optional (count = var.… ? 1 : 0)"
        for grant in _grants(tree)
        if "gcp-sa-" in json.dumps(grant.body.get("member")) and "count" not in grant.body
    ]


def gateway_ignores_what_cloud_build_sets(tree: TerraformTree) -> list[str]:
    """`gcloud run deploy --image` sets the image, client fields and template annotations; ignoring them keeps
    a later apply from rolling a new gateway revision (or rolling the code back)."""
    needed = ("template[0].containers[0].image", "template[0].annotations", "client", "client_version")
    violations: list[str] = []
    for service in tree.resources("google_cloud_run_v2_service"):
        if service.module_dir.name != "gateway":
            continue
        ignored = [
            str(i).removeprefix("${").removesuffix("}")
            for i in first(service.body.get("lifecycle")).get("ignore_changes", [])
        ]
        violations += [f"{service.address}: lifecycle must ignore {n}" for n in needed if n not in ignored]
    return violations


def vms_can_pull_from_the_repository(tree: TerraformTree) -> list[str]:
    """The VM account reads the spotgate Artifact Registry repository (an engine image may live there)."""
    readers = [
        g
        for g in tree.resources("google_artifact_registry_repository_iam_member")
        if g.body.get("role") == "roles/artifactregistry.reader"
        and "google_service_account.vm." in json.dumps([g.body.get("for_each"), g.body.get("member")])
    ]
    return [] if readers else ["the VM service account has no roles/artifactregistry.reader on the repository"]


def served_weights_stay_standard(tree: TerraformTree) -> list[str]:
    """No lifecycle rule moves objects to a colder class by age: served weights are read at every VM first boot
    and overflow start, and NEARLINE/COLDLINE/ARCHIVE charge per read."""
    return [
        f"{bucket.address}: lifecycle_rule changes the storage class"
        for bucket in tree.resources("google_storage_bucket")
        for rule in bucket.body.get("lifecycle_rule", [])
        if first(rule.get("action")).get("type") == "SetStorageClass"
    ]


CONDITIONED_PROJECT_ROLES = ("roles/artifactregistry.", "roles/storage.", "roles/datastore.")


def data_roles_on_the_project_are_conditioned(tree: TerraformTree) -> list[str]:
    """Artifact Registry, Storage and Datastore roles granted project-wide carry an IAM condition narrowing them
    to spotgate's (or Cloud Functions' own) resources; otherwise they reach every bucket and repository."""
    violations: list[str] = []
    for grant in tree.resources("google_project_iam_member"):
        text = tree.expression_text([grant.body.get("role"), grant.body.get("for_each")], grant.module_dir)
        broad = [r for r in CONDITIONED_PROJECT_ROLES if r in text]
        if broad and "condition" not in grant.body:
            violations.append(f"{grant.address}: {broad[0]}* granted project-wide without an IAM condition")
    return violations


def identities_wait_for_their_apis(tree: TerraformTree) -> list[str]:
    """Service accounts and custom roles depend on the API enablement (IAM may not be enabled yet otherwise)."""
    return [
        f"{block.address}: needs depends_on = [google_project_service.apis]"
        for kind in ("google_service_account", "google_project_iam_custom_role")
        for block in tree.resources(kind)
        if "google_project_service.apis" not in json.dumps(block.body.get("depends_on"))
    ]


REQUIRED_APIS = (
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "cloudtasks.googleapis.com",
    "compute.googleapis.com",
    "eventarc.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "storage.googleapis.com",
    "vpcaccess.googleapis.com",
)


def required_apis_are_enabled(tree: TerraformTree) -> list[str]:
    """Every API spotgate deploys through is enabled by Terraform (Resource Manager: project IAM policies)."""
    text = " ".join(json.dumps(s.body.get("for_each")) for s in tree.resources("google_project_service"))
    return [f"API {api} is not enabled in google_project_service" for api in REQUIRED_APIS if api not in text]


def function_services_are_named_by_the_function(tree: TerraformTree) -> list[str]:
    """Grants on a function's Cloud Run service name it through service_config[0].service, not the function name."""
    return [
        f"{grant.address}: name the service with service_config[0].service"
        for grant in tree.resources("google_cloud_run_v2_service_iam_member")
        if "google_cloudfunctions2_function" in json.dumps(grant.body.get("for_each"))
        and "service_config[0].service" not in str(grant.body.get("name"))
    ]


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


ALERTS = ("no-ready-backend", "overflow-warm", "idle-vm", "function-errors", "gateway-5xx")
METRICS = (
    "gateway-requests",
    "gateway-ttfb",
    "gateway-held",
    "gateway-refused",
    "control-actions",
    "start-failures",
    "preemptions",
    "pool-ready-backends",
    "pool-overflow-warm",
    "pool-idle-vms",
)


def operators_are_told(tree: TerraformTree) -> list[str]:
    """The log-based metrics, one dashboard, and the five alert policies exist; every alert notifies
    var.notification_channels, which the root module fills from var.alerts."""
    violations: list[str] = []
    for kind, wanted in (("google_logging_metric", METRICS), ("google_monitoring_alert_policy", ALERTS)):
        blocks = tree.resources(kind)
        text = " ".join(tree.expression_text(b.body.get("for_each"), b.module_dir) for b in blocks)
        violations += [f"no {kind} {name}" for name in wanted if f'"{name}"' not in text]
        if kind == "google_monitoring_alert_policy":
            violations += [
                f"{b.address}: must notify var.notification_channels"
                for b in blocks
                if b.body.get("notification_channels") != "${var.notification_channels}"
            ]
    if not tree.resources("google_monitoring_dashboard"):
        violations.append("no google_monitoring_dashboard")
    wired = [m for m in tree.blocks("module") if m.labels[0] == "observability"]
    if not wired or wired[0].body.get("notification_channels") != "${var.alerts.notification_channels}":
        violations.append("the root module must pass var.alerts.notification_channels to module.observability")
    return violations


def vm_subnets_have_nat_and_private_access(tree: TerraformTree) -> list[str]:
    """Every VM subnet (the home region's and each further region's) has Private Google Access and is NATed
    by a Cloud NAT of the same multiplicity (a pool spanning regions needs a NAT in every region)."""
    violations = []
    nats = list(tree.resources("google_compute_router_nat"))
    for subnet in tree.resources("google_compute_subnetwork"):
        name = subnet.labels[1]
        if not name.startswith("vms"):
            continue
        if subnet.body.get("private_ip_google_access") is not True:
            violations.append(f"{subnet.address}: private_ip_google_access must be true")
        covering = [
            nat
            for nat in nats
            if any(f"google_compute_subnetwork.{name}" in s for s in _strings(nat.body.get("subnetwork", [])))
            and nat.body.get("for_each") == subnet.body.get("for_each")
        ]
        if not covering:
            violations.append(f"{subnet.address}: no Cloud NAT covers this subnet in each of its regions")
    return violations


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
        service_agent_grants_are_optional,
        gateway_ignores_what_cloud_build_sets,
        vms_can_pull_from_the_repository,
        served_weights_stay_standard,
        data_roles_on_the_project_are_conditioned,
        identities_wait_for_their_apis,
        required_apis_are_enabled,
        function_services_are_named_by_the_function,
        operators_are_told,
        vm_subnets_have_nat_and_private_access,
    )
}
