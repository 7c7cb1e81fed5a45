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

# The audit trail is read newest-first per pool (`spotgate status`, the dev view): where pool == X order by
# at desc. Firestore needs a composite index for an equality filter combined with an order on another field.
resource "google_firestore_index" "events_by_pool" {
  project    = var.project
  database   = google_firestore_database.store.name
  collection = "${var.collection_prefix}_events"

  fields {
    field_path = "pool"
    order      = "ASCENDING"
  }
  fields {
    field_path = "at"
    order      = "DESCENDING"
  }
}
