# The gateway: one public HTTPS URL, OpenAI-compatible, that authenticates every request itself (API keys or
# Google ID tokens) and proxies to private VM IPs through the VPC, or to the overflow services with an ID token.

locals {
  # Cloud Run's deterministic URL lets the service know its own URL (the default ID-token audience) without
  # a dependency cycle on its own `uri` attribute.
  url = "https://${var.name}-${var.project_number}.${var.region}.run.app"

  environment = merge(var.environment, {
    SPOTGATE_GATEWAY_URL                = local.url
    SPOTGATE_GATEWAY_AUDIENCES          = jsonencode(var.audiences)
    SPOTGATE_GATEWAY_ALLOWED_PRINCIPALS = jsonencode(var.allowed_principals)
  })
}

resource "google_cloud_run_v2_service" "gateway" {
  project             = var.project
  location            = var.region
  name                = var.name
  description         = "spotgate OpenAI-compatible gateway"
  labels              = var.labels
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = var.deletion_protection
  # API keys are not Google identities, so Cloud Run IAM would reject every API-key request before the app
  # could check it. The invoker check is therefore turned off on this service (no allUsers binding, which
  # the domain-restricted-sharing org policy refuses) and the app authenticates every request itself (API
  # key hash lookup or ID-token signature + audience + principal) before reading the body.
  invoker_iam_disabled = true

  template {
    service_account                  = var.service_account
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    timeout                          = "${var.request_timeout_seconds}s"
    max_instance_request_concurrency = var.concurrency

    # Scale to zero when nobody calls: an idle gateway costs nothing.
    scaling {
      min_instance_count = 0
      max_instance_count = var.max_instances
    }

    containers {
      image = var.image

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.cpu
          memory = var.memory
        }
        # CPU stays allocated between requests: the routing-table listener and the activity flush run in
        # the background, and would stall if CPU were only given to requests.
        cpu_idle          = false
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = local.environment
        content {
          name  = env.key
          value = env.value
        }
      }
    }

    dynamic "vpc_access" {
      for_each = var.egress == "connector" ? [1] : []
      content {
        connector = var.vpc_connector
        egress    = "PRIVATE_RANGES_ONLY"
      }
    }

    dynamic "vpc_access" {
      for_each = var.egress == "direct" ? [1] : []
      content {
        egress = "PRIVATE_RANGES_ONLY"
        network_interfaces {
          network    = var.network
          subnetwork = var.direct_egress_subnetwork
        }
      }
    }
  }

  lifecycle {
    # Cloud Build owns the image (gcloud run deploy --image); gcloud also stamps client fields and the
    # revision template's annotations (client name/version), which would otherwise roll a new revision on
    # every apply.
    ignore_changes = [
      template[0].containers[0].image,
      template[0].annotations,
      template[0].labels,
      client,
      client_version,
    ]
  }
}
