# The store: routing table, pool state, API keys, activity and events (one writer per document kind).

locals {
  # Terraform maps the boolean onto the API's enum so callers cannot pass an unknown state.
  delete_protection_state = var.deletion_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
}

resource "google_firestore_database" "store" {
  project                           = var.project
  name                              = var.database
  location_id                       = var.location
  type                              = "FIRESTORE_NATIVE"
  app_engine_integration_mode       = "DISABLED"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = local.delete_protection_state
  deletion_policy                   = "DELETE"
}
