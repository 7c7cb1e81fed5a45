output "compute_topic" {
  description = "Short name of the topic the log sink publishes Compute Engine system events to."
  value       = google_pubsub_topic.topic["compute"].name
}

output "control_topic" {
  description = "Short name of the control topic (agents, gateway, Scheduler publish here)."
  value       = google_pubsub_topic.topic["control"].name
}

output "control_topic_id" {
  description = "Full resource name projects/P/topics/T of the control topic."
  value       = google_pubsub_topic.topic["control"].id
}

output "wake_queue" {
  description = "Full name projects/P/locations/L/queues/Q of the Cloud Tasks queue of the planner's wake-ups."
  value       = google_cloud_tasks_queue.wake.id
}

output "sink_filter" {
  description = "The log sink's filter (system_event audit log, gce_instance, the five methods)."
  value       = local.sink_filter
}

output "sink_writer_identity" {
  description = "The sink's unique writer identity (granted roles/pubsub.publisher on the compute topic)."
  value       = google_logging_project_sink.compute_events.writer_identity
}

output "function_services" {
  description = "Cloud Run service names of the two functions (their request metrics and logs), by topic."
  value       = { for k, f in google_cloudfunctions2_function.function : k => f.service_config[0].service }
}

output "functions" {
  description = "Function names by topic (compute, control), as Cloud Build deploys them."
  value       = { for k, f in google_cloudfunctions2_function.function : k => f.name }
}
