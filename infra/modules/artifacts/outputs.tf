output "models_bucket" {
  description = "Name of the models bucket (upload weights to gs://NAME/<model>/<revision>/)."
  value       = google_storage_bucket.models.name
}

output "source_bucket" {
  description = "Name of the bucket holding the functions' source archives."
  value       = google_storage_bucket.source.name
}

output "repository_id" {
  description = "Artifact Registry repository ID (the Cloud Build _REPO substitution)."
  value       = google_artifact_registry_repository.images.repository_id
}

output "repository_name" {
  description = "Full resource name of the Artifact Registry repository, for IAM bindings."
  value       = google_artifact_registry_repository.images.name
}

output "docker_prefix" {
  description = "Image prefix REGION-docker.pkg.dev/PROJECT/REPO to tag images with."
  value       = "${var.region}-docker.pkg.dev/${var.project}/${google_artifact_registry_repository.images.repository_id}"
}
