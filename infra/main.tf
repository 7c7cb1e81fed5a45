# spotgate on GCP: Terraform owns what exists (network, IAM, every pool's VMs, topics, sink, jobs, functions,
# gateway, overflow services, Firestore); the control plane owns what runs (it only starts/stops these VMs
# and flips the overflow services' min instances). See README.md for the walkthrough and every IAM role.

data "google_project" "this" {
  project_id = var.project
}

locals {
  labels = merge(var.labels, { "app" = "spotgate" })

  # The overflow services' real URLs go into the fleet (fleet.tf) so the gateway calls what exists.
  overflow_urls = { for pool, m in module.overflow : pool => m.url }

  pools_by_name      = { for p in var.pools : p.name => p }
  overflow_pools     = { for p in var.pools : p.name => p if p.overflow != null }
  engine_ports       = [for p in var.pools : p.engine.port]
  models_bucket_name = coalesce(var.models_bucket, "${var.project}-${var.name}-models")
  source_bucket_name = "${var.project}-${var.name}-source"
  functions_source   = coalesce(var.functions_source_dir, "${path.module}/../functions")

  # What functions and gateway share. The control_plane module adds the topic names it creates; the gateway
  # gets them from its outputs, and adds its own URL, audiences and principals.
  environment = {
    SPOTGATE_MODE               = "gcp"
    SPOTGATE_PROJECT            = var.project
    SPOTGATE_FLEET              = jsonencode(local.fleet)
    SPOTGATE_STORE              = "firestore"
    SPOTGATE_FIRESTORE_DATABASE = module.store.database
    SPOTGATE_LOG_LEVEL          = var.log_level
  }

  # Before Cloud Build's first run there is no gateway image in Artifact Registry yet; Google's public
  # sample image lets the first apply create the service, and Cloud Build replaces it (Terraform then
  # ignores the image, see modules/gateway).
  gateway_image = coalesce(var.gateway_image, "us-docker.pkg.dev/cloudrun/container/hello")
}

module "network" {
  source = "./modules/network"

  project             = var.project
  region              = var.region
  name                = var.name
  subnet_cidr         = var.network.subnet_cidr
  connector_cidr      = var.network.connector_cidr
  direct_egress_cidr  = var.network.direct_egress_cidr
  vm_regions          = var.network.regions
  gateway_egress      = var.gateway_egress
  engine_ports        = local.engine_ports
  vm_service_accounts = [google_service_account.vm.email]

  depends_on = [google_project_service.apis]
}

module "artifacts" {
  source = "./modules/artifacts"

  project       = var.project
  region        = var.region
  name          = var.name
  models_bucket = local.models_bucket_name
  source_bucket = local.source_bucket_name
  labels        = local.labels

  depends_on = [google_project_service.apis]
}

module "store" {
  source = "./modules/store"

  project             = var.project
  database            = var.firestore_database
  location            = coalesce(var.firestore_location, var.region)
  deletion_protection = var.deletion_protection

  depends_on = [google_project_service.apis]
}

module "gpu_pool" {
  source   = "./modules/gpu_pool"
  for_each = local.pools_by_name

  project         = var.project
  pool            = each.key
  vms             = local.pool_vms[each.key]
  machine_type    = each.value.host.machine_type
  gpu_type        = "nvidia-l4"
  gpu_count       = each.value.host.gpu_count
  boot_image      = "projects/${each.value.host.image_project}/global/images/family/${each.value.host.image_family}"
  disk_size_gb    = each.value.host.disk_size_gb
  disk_type       = each.value.host.disk_type
  subnetwork      = module.network.subnetwork_id
  subnetworks     = module.network.subnetwork_ids
  service_account = google_service_account.vm.email
  controller      = "serviceAccount:${google_service_account.controller.email}"
  instance_role   = google_project_iam_custom_role.instance_operator.id
  startup_script  = file("${path.module}/agent/startup.sh")
  shutdown_script = file("${path.module}/agent/shutdown.sh")
  labels          = local.labels

  # Read by infra/agent/*.sh through the metadata server (attributes/spotgate-*).
  agent = {
    project       = var.project
    control_topic = module.control_plane.control_topic
    port          = each.value.engine.port
    health_path   = each.value.engine.health_path
    engine_image  = each.value.serving.image
    engine_args   = local.engine_args[each.key].vm
    models_bucket = module.artifacts.models_bucket
    model_path    = each.value.serving.model_path
    # A preempted SPOT VM gets 30 s from ACPI soft-off to power-off (a pool's early preemption_notice comes
    # before that, and the agent's watcher drains through it); shutdown.sh spends up to 5 s publishing
    # draining, 3 s stopping the engine and keeps 2 s for power-off, so 20 s are left for in-flight requests.
    drain_seconds  = 20
    notice_seconds = 30
  }

  # The agent reads its own instance on boot (startup.sh: a never-stopped VM is Terraform's creation boot),
  # so its grant must exist before the first VM boots.
  depends_on = [google_project_service.apis, google_project_iam_member.vm_self_reader]
}

module "overflow" {
  source   = "./modules/overflow"
  for_each = local.overflow_pools

  project             = var.project
  region              = var.region
  service             = each.value.overflow.service
  pool                = each.key
  image               = coalesce(each.value.overflow.image, each.value.serving.image)
  gpu_type            = each.value.overflow.gpu_type
  args                = local.engine_args[each.key].overflow
  health_path         = each.value.engine.health_path
  cpu                 = each.value.overflow.cpu
  memory              = each.value.overflow.memory
  max_instances       = each.value.overflow.max_instances
  concurrency         = each.value.overflow.concurrency
  models_bucket       = module.artifacts.models_bucket
  service_account     = google_service_account.overflow.email
  invoker             = "serviceAccount:${google_service_account.gateway.email}"
  controller          = "serviceAccount:${google_service_account.controller.email}"
  scaler_role         = google_project_iam_custom_role.overflow_scaler.id
  deletion_protection = var.deletion_protection
  labels              = local.labels

  depends_on = [google_project_service.apis]
}

module "control_plane" {
  source = "./modules/control_plane"

  project                 = var.project
  region                  = var.region
  name                    = var.name
  environment             = local.environment
  source_dir              = local.functions_source
  source_bucket           = module.artifacts.source_bucket
  runtime_service_account = google_service_account.controller.email
  tasks_service_account   = google_service_account.tasks.email
  trigger_service_account = google_service_account.trigger.email
  build_service_account   = google_service_account.builder.id
  vpc_connector           = module.network.connector_id
  tick_schedule           = var.tick_schedule
  scheduled_jobs          = local.scheduled_jobs
  labels                  = local.labels
  control_publishers = {
    vm         = "serviceAccount:${google_service_account.vm.email}"
    gateway    = "serviceAccount:${google_service_account.gateway.email}"
    controller = "serviceAccount:${google_service_account.controller.email}"
    tasks      = "serviceAccount:${google_service_account.tasks.email}"
  }

  depends_on = [google_project_service.apis]
}

module "gateway" {
  source = "./modules/gateway"

  project         = var.project
  region          = var.region
  name            = "${var.name}-gateway"
  project_number  = data.google_project.this.number
  image           = local.gateway_image
  service_account = google_service_account.gateway.email
  environment = merge(local.environment, {
    SPOTGATE_CONTROL_TOPIC = module.control_plane.control_topic
    SPOTGATE_COMPUTE_TOPIC = module.control_plane.compute_topic
  })
  audiences                = var.gateway_audiences
  allowed_principals       = var.gateway_allowed_principals
  egress                   = var.gateway_egress
  vpc_connector            = module.network.connector_id
  network                  = module.network.network_id
  direct_egress_subnetwork = module.network.direct_egress_subnetwork_id
  max_instances            = var.gateway_max_instances
  concurrency              = var.gateway_concurrency
  deletion_protection      = var.deletion_protection
  labels                   = local.labels

  depends_on = [google_project_service.apis]
}

module "observability" {
  source = "./modules/observability"

  project               = var.project
  name                  = var.name
  gateway_service       = module.gateway.service
  function_services     = values(module.control_plane.function_services)
  notification_channels = var.alerts.notification_channels
  no_ready_minutes      = var.alerts.no_ready_minutes
  overflow_warm_hours   = var.alerts.overflow_warm_hours
  idle_minutes          = var.alerts.idle_minutes
  function_error_ratio  = var.alerts.function_error_ratio
  gateway_5xx_ratio     = var.alerts.gateway_5xx_ratio
  labels                = local.labels

  depends_on = [google_project_service.apis]
}
