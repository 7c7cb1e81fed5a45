output "service" {
  description = "Cloud Run service name (the fleet's overflow.service)."
  value       = google_cloud_run_v2_service.overflow.name
}

output "url" {
  description = "Service URL the gateway calls and uses as the ID-token audience (the fleet's overflow.url)."
  value       = google_cloud_run_v2_service.overflow.uri
}
