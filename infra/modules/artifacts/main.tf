# What the system is built from: model weights, the gateway image, the functions' source archives.

resource "google_storage_bucket" "models" {
  #checkov:skip=CKV_GCP_62:Access logs of weight reads by our own VMs add cost without audit value; Data Access audit logs cover this if wanted.
  project                     = var.project
  name                        = var.models_bucket
  location                    = upper(var.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # Weights are expensive to re-upload: a destroy must fail rather than delete them.
  force_destroy = false
  labels        = var.labels

  # Paths are versioned by convention (<model>/<revision>/…); object versioning additionally protects
  # against an accidental overwrite of a revision that VMs are serving.
  versioning {
    enabled = true
  }

  # No age-based move to a colder class: a revision is read by every VM boot that copies it and by every
  # overflow instance start, however old it is, and NEARLINE/COLDLINE charge for each such read. Retired
  # revisions are deleted by the operator (docs/deploy.md), not demoted by age.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:Only Terraform and Cloud Functions builds read these archives; access logs add no audit value.
  project                     = var.project
  name                        = var.source_bucket
  location                    = upper(var.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = var.labels

  versioning {
    enabled = true
  }

  # An archive is needed only while a build reads it; old ones are history, not state.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption is enough for public-source images; a CMEK key would be a second thing to operate.
  project       = var.project
  location      = var.region
  repository_id = var.name
  format        = "DOCKER"
  description   = "spotgate gateway images (built by Cloud Build)."
  labels        = var.labels

  docker_config {
    immutable_tags = false
  }

  # Keep the ten newest gateway images for rollbacks; delete older ones so storage does not grow forever.
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s"
    }
  }
}
