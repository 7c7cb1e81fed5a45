variable "project" {
  type        = string
  description = "Project ID that owns the network."

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.project))
    error_message = "project must be a GCP project ID (6-30 characters: lowercase letters, digits, hyphens)."
  }
}

variable "region" {
  type        = string
  description = "Region of the subnets, the Cloud Router/NAT and the Serverless VPC Access connector."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must look like us-central1."
  }
}

variable "name" {
  type        = string
  description = "Prefix for every network resource name."
  default     = "spotgate"

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{0,14}$", var.name))
    error_message = "name must be 1-15 characters of lowercase letters, digits and hyphens, starting with a letter (the connector name adds 5)."
  }
}

variable "subnet_cidr" {
  type        = string
  description = "Primary range of the private subnet the GPU VMs live in."
  default     = "10.20.0.0/20"

  validation {
    condition     = can(cidrhost(var.subnet_cidr, 0))
    error_message = "subnet_cidr must be an IPv4 CIDR range."
  }
}

variable "connector_cidr" {
  type        = string
  description = "The /28 the Serverless VPC Access connector uses (functions always; the gateway when gateway_egress = \"connector\")."
  default     = "10.20.16.0/28"

  validation {
    condition     = can(cidrhost(var.connector_cidr, 0)) && endswith(var.connector_cidr, "/28")
    error_message = "connector_cidr must be an IPv4 /28 range."
  }
}

variable "gateway_egress" {
  type        = string
  description = "How the gateway reaches the VMs' private IPs: \"connector\" (Serverless VPC Access) or \"direct\" (Direct VPC egress from its own subnet)."
  default     = "connector"

  validation {
    condition     = contains(["connector", "direct"], var.gateway_egress)
    error_message = "gateway_egress must be \"connector\" or \"direct\"."
  }
}

variable "direct_egress_cidr" {
  type        = string
  description = "Range of the subnet Cloud Run instances take addresses from when gateway_egress = \"direct\" (at least /26; a /24 allows about 100 gateway instances)."
  default     = "10.20.32.0/24"

  validation {
    condition     = can(cidrhost(var.direct_egress_cidr, 0)) && tonumber(split("/", var.direct_egress_cidr)[1]) <= 26
    error_message = "direct_egress_cidr must be an IPv4 range of /26 or larger."
  }
}

variable "engine_ports" {
  type        = list(number)
  description = "TCP ports the inference engines listen on (one per pool; duplicates are fine)."

  validation {
    condition     = length(var.engine_ports) > 0 && alltrue([for p in var.engine_ports : p >= 1 && p <= 65535 && floor(p) == p])
    error_message = "engine_ports must list at least one TCP port between 1 and 65535."
  }
}

variable "vm_service_accounts" {
  type        = list(string)
  description = "Service accounts of the GPU VMs; the firewall rules target these instead of network tags, so only spotgate's VMs are opened."

  validation {
    condition     = length(var.vm_service_accounts) > 0 && alltrue([for e in var.vm_service_accounts : can(regex("^[^@]+@[^@]+\\.iam\\.gserviceaccount\\.com$", e))])
    error_message = "vm_service_accounts must list at least one service account email."
  }
}

variable "vm_regions" {
  type        = map(string)
  description = "Further regions of the VPC where pools place VMs, each with the primary range of its VM subnet (DESIGN 2.1: a pool may span regions; the connector and the gateway stay in var.region)."
  default     = {}

  validation {
    condition     = alltrue([for r, cidr in var.vm_regions : can(regex("^[a-z]+-[a-z]+[0-9]+$", r)) && can(cidrhost(cidr, 0))])
    error_message = "vm_regions maps regions (like us-east1) to IPv4 CIDR ranges."
  }

  validation {
    condition     = !contains(keys(var.vm_regions), var.region)
    error_message = "vm_regions lists only regions other than var.region (whose subnet is subnet_cidr)."
  }
}
