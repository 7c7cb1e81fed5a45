variable "project" {
  type        = string
  description = "Project ID that owns the database."
}

variable "database" {
  type        = string
  description = "Firestore database ID (SPOTGATE_FIRESTORE_DATABASE). A named database leaves the project's (default) alone."
  default     = "spotgate"

  validation {
    condition     = var.database == "(default)" || can(regex("^[a-z][-a-z0-9]{2,61}[a-z0-9]$", var.database))
    error_message = "database must be (default) or 4-63 characters of lowercase letters, digits and hyphens."
  }
}

variable "location" {
  type        = string
  description = "Firestore location: a region (us-central1) to sit next to the gateway, or a multi-region (nam5, eur3)."

  validation {
    condition     = can(regex("^([a-z]+-[a-z]+[0-9]+|nam5|nam7|eur3)$", var.location))
    error_message = "location must be a region like us-central1 or one of nam5, nam7, eur3."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to delete the database (routes, pool state, API keys live here)."
  default     = true
}

variable "collection_prefix" {
  type        = string
  description = "Prefix of spotgate's Firestore collections (SPOTGATE_STORE_PREFIX); the events index is built on <prefix>_events."
  default     = "spotgate"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,30}$", var.collection_prefix))
    error_message = "collection_prefix must be lowercase letters, digits and underscores, starting with a letter."
  }
}
