# A pool's Cloud Run GPU overflow: the same model on a Cloud Run GPU (L4 by default), scaled to zero, warmed by the control plane
# (service-level min instances 1) while the pool's VMs cannot serve, and callable only by the gateway.

resource "google_cloud_run_v2_service" "overflow" {
  project             = var.project
  location            = var.region
  name                = var.service
  description         = "spotgate overflow for pool ${var.pool}"
  labels              = merge(var.labels, { "spotgate-pool" = var.pool })
  deletion_protection = var.deletion_protection
  # The gateway calls the run.app URL from the internet side (its VPC egress carries private ranges only);
  # IAM (run.invoker for the gateway's account only) is what keeps everyone else out.
  ingress = "INGRESS_TRAFFIC_ALL"

  # The control plane owns this number (0 = scale to zero, 1 = warm during a gap); see lifecycle below.
  scaling {
    min_instance_count = 0
  }

  template {
    service_account                  = var.service_account
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    timeout                          = "3600s"
    max_instance_request_concurrency = var.concurrency
    # One zone is enough for a stopgap and does not need the zonal-redundancy GPU quota.
    gpu_zonal_redundancy_disabled = true

    scaling {
      min_instance_count = 0
      max_instance_count = var.max_instances
    }

    # Cloud Run offers the L4 (the same GPU as the pool's G2 VMs, so the same engine flags fit) and the
    # RTX PRO 6000 (96 GB: a model too large for one L4; its engine flags may need a pool of its own).
    node_selector {
      accelerator = var.gpu_type
    }

    containers {
      image = var.image
      args  = var.args

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu              = var.cpu
          memory           = var.memory
          "nvidia.com/gpu" = "1"
        }
        # Cloud Run GPUs require CPU to stay allocated for the instance's lifetime.
        cpu_idle          = false
        startup_cpu_boost = true
      }

      volume_mounts {
        name       = "models"
        mount_path = "/models"
      }

      # Loading weights takes minutes; allow up to 10 minutes before the instance counts as failed.
      startup_probe {
        period_seconds    = 10
        timeout_seconds   = 5
        failure_threshold = 60
        http_get {
          path = var.health_path
          port = 8080
        }
      }
    }

    volumes {
      name = "models"
      gcs {
        bucket    = var.models_bucket
        read_only = true
      }
    }
  }

  lifecycle {
    ignore_changes = [scaling[0].min_instance_count]
  }
}

resource "google_cloud_run_v2_service_iam_member" "gateway_invoker" {
  project  = var.project
  location = var.region
  name     = google_cloud_run_v2_service.overflow.name
  role     = "roles/run.invoker"
  member   = var.invoker
}

resource "google_cloud_run_v2_service_iam_member" "controller_scaler" {
  project  = var.project
  location = var.region
  name     = google_cloud_run_v2_service.overflow.name
  role     = var.scaler_role
  member   = var.controller
}
