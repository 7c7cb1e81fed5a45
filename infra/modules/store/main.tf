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

# Every gateway instance writes one activity record per pool (<prefix>_gateway_activity) and carries a
# `delete_at` timestamp a day past the record's expiry; this TTL policy lets Firestore delete records of
# instances long gone, so the collection stays as small as the number of recent gateway instances.
resource "google_firestore_field" "gateway_activity_ttl" {
  project    = var.project
  database   = google_firestore_database.store.name
  collection = "${var.collection_prefix}_gateway_activity"
  field      = "delete_at"

  # No single-field index on a value only the TTL sweeper reads.
  index_config {}
  ttl_config {}
}

# `spotgate report` lists one pool's history since a time: where pool == X and at >= T (an equality filter
# with a range on another field needs a composite index).
resource "google_firestore_index" "history_by_pool" {
  project    = var.project
  database   = google_firestore_database.store.name
  collection = "${var.collection_prefix}_history"

  fields {
    field_path = "pool"
    order      = "ASCENDING"
  }
  fields {
    field_path = "at"
    order      = "ASCENDING"
  }
}

# History records carry `delete_at` (their time plus the retention, 35 days); Firestore deletes them after.
resource "google_firestore_field" "history_ttl" {
  project    = var.project
  database   = google_firestore_database.store.name
  collection = "${var.collection_prefix}_history"
  field      = "delete_at"

  index_config {}
  ttl_config {}
}

# The gateway's counts of where requests were served, per pool and minute: listed per pool since a time.
resource "google_firestore_index" "served_by_pool" {
  project    = var.project
  database   = google_firestore_database.store.name
  collection = "${var.collection_prefix}_served"

  fields {
    field_path = "pool"
    order      = "ASCENDING"
  }
  fields {
    field_path = "minute"
    order      = "ASCENDING"
  }
}

resource "google_firestore_field" "served_ttl" {
  project    = var.project
  database   = google_firestore_database.store.name
  collection = "${var.collection_prefix}_served"
  field      = "delete_at"

  index_config {}
  ttl_config {}
}
