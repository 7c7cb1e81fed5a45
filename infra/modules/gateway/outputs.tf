output "url" {
  description = "The gateway URL (OpenAI base_url is URL/v1)."
  value       = local.url
}

output "service" {
  description = "Cloud Run service name of the gateway (the Cloud Build _GATEWAY_SERVICE substitution)."
  value       = google_cloud_run_v2_service.gateway.name
}

output "uri" {
  description = "The URI Cloud Run reports for the service (the same host as url, or the legacy hash form)."
  value       = google_cloud_run_v2_service.gateway.uri
}
