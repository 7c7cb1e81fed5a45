output "database" {
  description = "Firestore database ID (the value of SPOTGATE_FIRESTORE_DATABASE)."
  value       = google_firestore_database.store.name
}

output "database_resource" {
  description = "Full resource name projects/P/databases/D, used in IAM conditions."
  value       = "projects/${var.project}/databases/${google_firestore_database.store.name}"
}
