variable "project" {
  type        = string
  description = "Project ID of the gateway service."
}

variable "region" {
  type        = string
  description = "Region of the gateway service (same as the VMs: the proxy path stays in one region)."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must look like us-central1."
  }
}

variable "name" {
  type        = string
  description = "Cloud Run service name of the gateway."
  default     = "spotgate-gateway"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$", var.name))
    error_message = "name must be a valid Cloud Run service name (up to 49 characters)."
  }
}

variable "project_number" {
  type        = string
  description = "Project number; the gateway's deterministic URL https://NAME-NUMBER.REGION.run.app contains it."

  validation {
    condition     = can(regex("^[0-9]+$", var.project_number))
    error_message = "project_number must be digits."
  }
}

variable "image" {
  type        = string
  description = "Image the service is created with. Cloud Build deploys newer images later; Terraform ignores the image after creation."
}

variable "service_account" {
  type        = string
  description = "Email the gateway runs as (reads routes and keys, writes activity, publishes wake, invokes overflow)."
}

variable "environment" {
  type        = map(string)
  description = "SPOTGATE_* environment (fleet JSON, store, topics); the gateway's own URL, audiences and principals are added here."
}

variable "audiences" {
  type        = list(string)
  description = "Extra ID-token audiences the gateway accepts besides its own URL (e.g. a custom domain)."
  default     = []
}

variable "allowed_principals" {
  type        = list(string)
  description = "Google identities allowed with an ID token: emails, or \"@example.com\" for a whole domain. API keys work regardless."
  default     = []
}

variable "egress" {
  type        = string
  description = "\"connector\" (Serverless VPC Access) or \"direct\" (Direct VPC egress) to reach the VMs' private IPs."
  default     = "connector"

  validation {
    condition     = contains(["connector", "direct"], var.egress)
    error_message = "egress must be \"connector\" or \"direct\"."
  }
}

variable "vpc_connector" {
  type        = string
  description = "Connector ID, used when egress = \"connector\"."
}

variable "network" {
  type        = string
  description = "VPC ID, used when egress = \"direct\"."
}

variable "direct_egress_subnetwork" {
  type        = string
  description = "Subnet ID for Direct VPC egress, used when egress = \"direct\" (null otherwise)."
  default     = null
}

variable "max_instances" {
  type        = number
  description = "Upper bound on gateway instances."
  default     = 10

  validation {
    condition     = var.max_instances >= 1 && var.max_instances <= 1000
    error_message = "max_instances must be between 1 and 1000."
  }
}

variable "concurrency" {
  type        = number
  description = "Requests per instance; gevent workers hold many idle SSE streams cheaply."
  default     = 1000

  validation {
    condition     = var.concurrency >= 1 && var.concurrency <= 1000
    error_message = "concurrency must be between 1 and 1000 (the Cloud Run maximum)."
  }
}

variable "request_timeout_seconds" {
  type        = number
  description = "Longest request (a long generation stream); Cloud Run allows up to 3600."
  default     = 3600

  validation {
    condition     = var.request_timeout_seconds >= 60 && var.request_timeout_seconds <= 3600
    error_message = "request_timeout_seconds must be between 60 and 3600."
  }
}

variable "cpu" {
  type        = string
  description = "vCPUs per instance."
  default     = "2"

  validation {
    condition     = contains(["1", "2", "4", "8"], var.cpu)
    error_message = "cpu must be 1, 2, 4 or 8."
  }
}

variable "memory" {
  type        = string
  description = "Memory per instance."
  default     = "1Gi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.memory))
    error_message = "memory must look like 512Mi or 2Gi."
  }

  # Cloud Run's minimum memory per vCPU count (4 vCPU need 2 GiB, 6 or 8 vCPU need 4 GiB); the API rejects less.
  validation {
    condition = !can(regex("^[0-9]+(Mi|Gi)$", var.memory)) || (
      tonumber(regex("^[0-9]+", var.memory)) * (endswith(var.memory, "Gi") ? 1024 : 1)
    ) >= lookup({ "1" = 128, "2" = 128, "4" = 2048, "6" = 4096, "8" = 4096 }, var.cpu, 0)
    error_message = "memory is below Cloud Run's minimum for this cpu: 4 vCPU need at least 2Gi, 8 vCPU at least 4Gi."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to delete the service in Terraform."
  default     = true
}

variable "labels" {
  type        = map(string)
  description = "Labels for the service."
  default     = {}
}
