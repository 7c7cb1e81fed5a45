# Identities and their grants, in one file so the whole access model reads top to bottom (README.md lists
# every role with its reason). No primitive roles; resource-level grants wherever the API allows them.

locals {
  # Project-level roles a service account cannot do without, keyed "<account>/<purpose>" so addresses stay
  # stable (the values hold emails that are unknown until the accounts exist).
  project_roles = {
    "vm/logging"         = { account = google_service_account.vm.email, role = "roles/logging.logWriter" }
    "vm/monitoring"      = { account = google_service_account.vm.email, role = "roles/monitoring.metricWriter" }
    "controller/logging" = { account = google_service_account.controller.email, role = "roles/logging.logWriter" }
    "controller/fleet"   = { account = google_service_account.controller.email, role = google_project_iam_custom_role.fleet_observer.id }
    "gateway/logging"    = { account = google_service_account.gateway.email, role = "roles/logging.logWriter" }
    "overflow/logging"   = { account = google_service_account.overflow.email, role = "roles/logging.logWriter" }
    "builder/logging"    = { account = google_service_account.builder.email, role = "roles/logging.logWriter" }
    "deployer/functions" = { account = google_service_account.deployer.email, role = "roles/cloudfunctions.developer" }
    "deployer/run"       = { account = google_service_account.deployer.email, role = "roles/run.developer" }
    "deployer/logging"   = { account = google_service_account.deployer.email, role = "roles/logging.logWriter" }
  }

  # Firestore roles exist only at project level; an IAM condition narrows them to spotgate's database.
  datastore_users = {
    controller = google_service_account.controller.email
    gateway    = google_service_account.gateway.email
  }
  datastore_condition = "resource.name == \"${module.store.database_resource}\""

  # Cloud Functions creates the gcf-artifacts repository and the gcf-v2-sources-/gcf-v2-uploads- buckets on
  # first deploy, so Terraform cannot grant on them directly; project-level grants with IAM conditions on
  # their names keep the build account away from every other repository and bucket. (Storage conditions see
  # buckets and objects as projects/_/buckets/B[/objects/O]; Artifact Registry as projects/P/locations/L/…)
  builder_grants = {
    images = {
      role       = "roles/artifactregistry.writer"
      title      = "gcf-artifacts-only"
      expression = "resource.name.startsWith(\"projects/${var.project}/locations/${var.region}/repositories/gcf-artifacts\")"
    }
    sources = {
      role  = "roles/storage.objectViewer"
      title = "function-sources-only"
      expression = join(" || ", [
        "resource.name.startsWith(\"projects/_/buckets/gcf-v2-sources-\")",
        "resource.name.startsWith(\"projects/_/buckets/gcf-v2-uploads-\")",
        "resource.name.startsWith(\"projects/_/buckets/${local.source_bucket_name}/\")",
        "resource.name == \"projects/_/buckets/${local.source_bucket_name}\"",
      ])
    }
  }

  # The agent reads its own instance (compute.instances.get) to tell Terraform's creation boot from a start by
  # the control plane; the condition limits that to the fleet's own VMs.
  vm_self_read_condition = join(" || ", [
    for vm in flatten(values(local.pool_vms)) : "resource.name.endsWith(\"/zones/${vm.zone}/instances/${vm.name}\")"
  ])
}

resource "google_service_account" "vm" {
  project      = var.project
  account_id   = "${var.name}-vm"
  display_name = "spotgate GPU VMs (agent: publish ready/draining, read weights)"

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "controller" {
  project      = var.project
  account_id   = "${var.name}-controller"
  display_name = "spotgate control plane (functions: start/stop VMs, scale overflow, write routes)"

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "trigger" {
  project      = var.project
  account_id   = "${var.name}-trigger"
  display_name = "spotgate Eventarc triggers (invoke the two functions)"

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "tasks" {
  project      = var.project
  account_id   = "${var.name}-tasks"
  display_name = "spotgate wake-ups (Cloud Tasks publishes the planner's timers to the control topic)"

  depends_on = [google_project_service.apis]
}

# A task carrying an OAuth token of the tasks account needs its creator to act as that account: granted on
# that one account only, never project-wide.
resource "google_service_account_iam_member" "controller_acts_as_tasks" {
  service_account_id = google_service_account.tasks.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.controller.email}"
}

resource "google_service_account" "gateway" {
  project      = var.project
  account_id   = "${var.name}-gateway"
  display_name = "spotgate gateway (read routes/keys, write activity, publish wake, call overflow)"

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "overflow" {
  project      = var.project
  account_id   = "${var.name}-overflow"
  display_name = "spotgate Cloud Run GPU overflow services (read weights)"

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "builder" {
  project      = var.project
  account_id   = "${var.name}-fn-builder"
  display_name = "spotgate Cloud Functions builds"

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "deployer" {
  project      = var.project
  account_id   = "${var.name}-deployer"
  display_name = "spotgate Cloud Build pipeline (test, push image, deploy)"

  depends_on = [google_project_service.apis]
}

# Read-side of the fleet: list instances by label and poll zone operations. Start/stop are granted per VM
# (instance_operator below), so the controller can observe the project but only act on spotgate's VMs.
resource "google_project_iam_custom_role" "fleet_observer" {
  project     = var.project
  role_id     = "${replace(var.name, "-", "_")}FleetObserver"
  title       = "spotgate fleet observer"
  description = "List instances and read zone and Cloud Run operations."
  permissions = [
    "compute.instances.list",
    "compute.zoneOperations.get",
    "run.operations.get",
  ]

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_custom_role" "instance_operator" {
  project     = var.project
  role_id     = "${replace(var.name, "-", "_")}InstanceOperator"
  title       = "spotgate instance operator"
  description = "Get, start and stop one VM and set its preemption notice (granted per instance)."
  permissions = [
    "compute.instances.get",
    "compute.instances.setScheduling", # the pool's preemption_notice, applied while the VM is stopped
    "compute.instances.start",
    "compute.instances.stop",
  ]

  depends_on = [google_project_service.apis]
}

# The agent's view of its own VM (see local.vm_self_read_condition).
resource "google_project_iam_custom_role" "instance_reader" {
  project     = var.project
  role_id     = "${replace(var.name, "-", "_")}InstanceReader"
  title       = "spotgate instance reader"
  description = "Get one VM (the agent reads its own instance's stop history)."
  permissions = ["compute.instances.get"]

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_custom_role" "overflow_scaler" {
  project     = var.project
  role_id     = "${replace(var.name, "-", "_")}OverflowScaler"
  title       = "spotgate overflow scaler"
  description = "Read a Cloud Run service and update its service-level min instances (granted per service)."
  permissions = [
    "run.services.get",
    "run.services.update",
  ]

  depends_on = [google_project_service.apis]
}

# Capacity advice (pools with capacity_advice = true): advice.capacity and advice.capacityHistory, both
# read-only and asked per region of the project, so the grant is project-level; nothing else is in the role,
# and it exists only while a pool uses it (roles/compute.viewer holds both, with some 300 other reads). The
# names come from Google's predefined role definitions as the IAM API lists them (roles/compute.viewer,
# compute.editor, compute.admin; copied in the public iann0036/iam-dataset, Aug 2026), not from Google's
# documentation, whose IAM section of the two methods was not in the material available offline; nor was
# whether custom roles accept them (their custom-role support level). If `terraform apply` refuses the
# role, grant roles/compute.viewer instead (broader). Without the grant advice is "unknown": placement as
# without capacity_advice.
resource "google_project_iam_custom_role" "capacity_advisor" {
  count = local.capacity_advice_wanted ? 1 : 0

  project     = var.project
  role_id     = "${replace(var.name, "-", "_")}CapacityAdvisor"
  title       = "spotgate capacity advisor"
  description = "Read Compute Engine's SPOT capacity advice and capacity history (placement of SPOT starts)."
  permissions = [
    "compute.advice.capacity",
    "compute.advice.capacityHistory",
  ]

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "capacity_advisor" {
  count = local.capacity_advice_wanted ? 1 : 0

  project = var.project
  role    = google_project_iam_custom_role.capacity_advisor[0].id
  member  = "serviceAccount:${google_service_account.controller.email}"
}

resource "google_project_iam_member" "project" {
  for_each = local.project_roles

  project = var.project
  role    = each.value.role
  member  = "serviceAccount:${each.value.account}"
}

resource "google_project_iam_member" "builder" {
  for_each = local.builder_grants

  project = var.project
  role    = each.value.role
  member  = "serviceAccount:${google_service_account.builder.email}"

  condition {
    title       = each.value.title
    description = "Only what Cloud Functions builds read or write."
    expression  = each.value.expression
  }
}

resource "google_project_iam_member" "vm_self_reader" {
  project = var.project
  role    = google_project_iam_custom_role.instance_reader.id
  member  = "serviceAccount:${google_service_account.vm.email}"

  condition {
    title       = "spotgate-vms-only"
    description = "Only the fleet's own VMs."
    expression  = local.vm_self_read_condition
  }
}

resource "google_project_iam_member" "datastore" {
  for_each = local.datastore_users

  project = var.project
  role    = "roles/datastore.user"
  member  = "serviceAccount:${each.value}"

  condition {
    title       = "spotgate-database-only"
    description = "Only the spotgate Firestore database."
    expression  = local.datastore_condition
  }
}

# Weights: VMs and overflow services read them; nobody but operators writes.
resource "google_storage_bucket_iam_member" "models_reader" {
  for_each = {
    vm       = google_service_account.vm.email
    overflow = google_service_account.overflow.email
  }

  bucket = module.artifacts.models_bucket
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${each.value}"
}

# Cloud Build pushes the gateway image to this repository only.
resource "google_artifact_registry_repository_iam_member" "deployer_writer" {
  project    = var.project
  location   = var.region
  repository = module.artifacts.repository_id
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.deployer.email}"
}

# The gateway (a Cloud Run service), the overflow services and the VMs (an engine image kept here; the agent
# logs Docker in with the VM's token) pull from the repository.
resource "google_artifact_registry_repository_iam_member" "runtime_reader" {
  for_each = {
    gateway  = google_service_account.gateway.email
    overflow = google_service_account.overflow.email
    vm       = google_service_account.vm.email
  }

  project    = var.project
  location   = var.region
  repository = module.artifacts.repository_id
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${each.value}"
}

# Deploying a function or service that runs as an account requires actAs on that account; the controller
# needs it on the overflow account because updating a Cloud Run service is a deploy as its runtime identity.
resource "google_service_account_iam_member" "act_as" {
  for_each = {
    "deployer/controller" = { account = google_service_account.controller.name, member = google_service_account.deployer.email }
    "deployer/trigger"    = { account = google_service_account.trigger.name, member = google_service_account.deployer.email }
    "deployer/gateway"    = { account = google_service_account.gateway.name, member = google_service_account.deployer.email }
    "deployer/builder"    = { account = google_service_account.builder.name, member = google_service_account.deployer.email }
    "controller/overflow" = { account = google_service_account.overflow.name, member = google_service_account.controller.email }
    # Starting a VM that runs as a service account is checked against actAs on that account; the VM account
    # holds only publish-to-control, read-weights and log/metric writing, so this grants nothing broader.
    "controller/vm" = { account = google_service_account.vm.name, member = google_service_account.controller.email }
  }

  service_account_id = each.value.account
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${each.value.member}"
}

# Pub/Sub mints the OIDC token of each Eventarc push as the trigger account. Only projects created before
# April 2021 need this grant, and it names a Google service agent, which the domain-restricted-sharing org
# policy (iam.allowedPolicyMemberDomains) may refuse: off unless var.pubsub_token_creator_grant asks for it.
resource "google_service_account_iam_member" "pubsub_token_creator" {
  count = var.pubsub_token_creator_grant ? 1 : 0

  service_account_id = google_service_account.trigger.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}
