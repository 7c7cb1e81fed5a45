output "gateway_url" {
  description = "The gateway URL; OpenAI clients use base_url = GATEWAY_URL/v1."
  value       = module.gateway.url
}

output "gateway_service" {
  description = "Cloud Run service name of the gateway (Cloud Build substitution _GATEWAY_SERVICE)."
  value       = module.gateway.service
}

output "fleet_json" {
  description = "The fleet exactly as the functions and the gateway receive it in SPOTGATE_FLEET (for spotgate status/plan/keys from a workstation)."
  value       = jsonencode(local.fleet)
}

output "vms" {
  description = "Every VM by pool: name => {zone, provisioning_model, internal_ip, self_link}."
  value       = { for pool, m in module.gpu_pool : pool => m.instances }
}

output "overflow_urls" {
  description = "Overflow service URL by pool (only pools with an overflow)."
  value       = { for pool, m in module.overflow : pool => m.url }
}

output "models_bucket" {
  description = "Bucket to upload weights to, under gs://BUCKET/<serving.model_path>/."
  value       = module.artifacts.models_bucket
}

output "docker_prefix" {
  description = "Artifact Registry image prefix REGION-docker.pkg.dev/PROJECT/REPO."
  value       = module.artifacts.docker_prefix
}

output "control_topic" {
  description = "Control topic name (SPOTGATE_CONTROL_TOPIC)."
  value       = module.control_plane.control_topic
}

output "compute_topic" {
  description = "Compute events topic name (SPOTGATE_COMPUTE_TOPIC)."
  value       = module.control_plane.compute_topic
}

output "firestore_database" {
  description = "Firestore database ID (SPOTGATE_FIRESTORE_DATABASE)."
  value       = module.store.database
}

output "service_accounts" {
  description = "Emails of spotgate's service accounts by role (vm, controller, trigger, gateway, overflow, builder, deployer)."
  value = {
    vm         = google_service_account.vm.email
    controller = google_service_account.controller.email
    trigger    = google_service_account.trigger.email
    gateway    = google_service_account.gateway.email
    overflow   = google_service_account.overflow.email
    builder    = google_service_account.builder.email
    deployer   = google_service_account.deployer.email
  }
}

output "cloudbuild_substitutions" {
  description = "Substitutions for cloudbuild.yaml, ready for `gcloud builds triggers create ... --substitutions`."
  value = {
    _REGION           = var.region
    _REPO             = module.artifacts.repository_id
    _GATEWAY_SERVICE  = module.gateway.service
    _COMPUTE_FUNCTION = module.control_plane.functions["compute"]
    _CONTROL_FUNCTION = module.control_plane.functions["control"]
    _COMPUTE_TOPIC    = module.control_plane.compute_topic
    _CONTROL_TOPIC    = module.control_plane.control_topic
    _RUNTIME_SA       = google_service_account.controller.email
    _TRIGGER_SA       = google_service_account.trigger.email
    _BUILD_SA         = google_service_account.builder.id
    _CONNECTOR        = module.network.connector_id
  }
}

output "dashboard_url" {
  description = "Cloud Monitoring dashboard of the fleet (requests, TTFB, ready backends, actions, preemptions, start failures)."
  value       = "https://console.cloud.google.com/monitoring/dashboards/custom/${element(split("/", module.observability.dashboard_id), length(split("/", module.observability.dashboard_id)) - 1)}?project=${var.project}"
}

output "alert_policies" {
  description = "Alert policy names by alert (no-ready-backend, overflow-warm, idle-vm, function-errors, gateway-5xx)."
  value       = module.observability.alert_policies
}
