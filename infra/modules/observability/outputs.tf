output "dashboard_id" {
  description = "ID of the spotgate dashboard (projects/NUMBER/dashboards/ID)."
  value       = google_monitoring_dashboard.spotgate.id
}

output "log_metrics" {
  description = "Log-based metric types by short name (logging.googleapis.com/user/NAME-...)."
  value       = { for k, m in google_logging_metric.metric : k => "logging.googleapis.com/user/${m.name}" }
}

output "alert_policies" {
  description = "Alert policy names (projects/P/alertPolicies/ID) by short name."
  value       = { for k, p in google_monitoring_alert_policy.alert : k => p.name }
}
