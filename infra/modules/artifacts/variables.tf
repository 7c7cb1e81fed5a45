variable "project" {
  type        = string
  description = "Project ID that owns the buckets and the repository."
}

variable "region" {
  type        = string
  description = "Location of the buckets and the Artifact Registry repository (same region as the VMs, so weight reads stay regional and free)."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must look like us-central1."
  }
}

variable "name" {
  type        = string
  description = "Prefix for the repository and bucket names."
  default     = "spotgate"

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{0,20}$", var.name))
    error_message = "name must be 1-21 characters of lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "models_bucket" {
  type        = string
  description = "Globally unique name of the models bucket (weights under versioned paths <model>/<revision>/)."

  validation {
    condition     = can(regex("^[a-z0-9][-a-z0-9_.]{1,61}[a-z0-9]$", var.models_bucket))
    error_message = "models_bucket must be a valid bucket name (3-63 characters)."
  }
}

variable "source_bucket" {
  type        = string
  description = "Globally unique name of the bucket holding the functions' source archives."

  validation {
    condition     = can(regex("^[a-z0-9][-a-z0-9_.]{1,61}[a-z0-9]$", var.source_bucket))
    error_message = "source_bucket must be a valid bucket name (3-63 characters)."
  }
}

variable "noncurrent_retention_days" {
  type        = number
  description = "Delete overwritten or deleted object versions after this many days."
  default     = 30

  validation {
    condition     = var.noncurrent_retention_days >= 1
    error_message = "noncurrent_retention_days must be at least 1."
  }
}

variable "labels" {
  type        = map(string)
  description = "Labels for the buckets and the repository."
  default     = {}
}
