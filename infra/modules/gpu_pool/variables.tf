variable "project" {
  type        = string
  description = "Project ID the VMs are created in."
}

variable "pool" {
  type        = string
  description = "Pool name; becomes the `spotgate-pool` label the control plane selects VMs by."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}$", var.pool))
    error_message = "pool must match ^[a-z][a-z0-9-]{0,30}$ (the FleetConfig pool name rule)."
  }
}

variable "vms" {
  type = list(object({
    name               = string
    zone               = string
    provisioning_model = string
  }))
  description = "Every VM of the pool, already expanded from the pool's spot group (names are the ones SPOTGATE_FLEET lists)."

  validation {
    condition     = length(var.vms) > 0 && alltrue([for vm in var.vms : contains(["SPOT", "STANDARD"], vm.provisioning_model)])
    error_message = "vms must be non-empty and every provisioning_model must be SPOT or STANDARD."
  }

  validation {
    condition     = alltrue([for vm in var.vms : can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", vm.name)) && can(regex("^[a-z]+-[a-z]+[0-9]+-[a-z]$", vm.zone))])
    error_message = "every VM needs a valid Compute Engine name and a zone like us-central1-a."
  }
}

variable "machine_type" {
  type        = string
  description = "Machine type; G2 machine types carry L4 GPUs (g2-standard-4 has 1 L4, 4 vCPU, 16 GB)."

  validation {
    condition     = can(regex("^g2-(standard|custom)-", var.machine_type))
    error_message = "machine_type must be a G2 machine type (L4 GPUs attach only to G2)."
  }
}

variable "gpu_type" {
  type        = string
  description = "Accelerator type attached to each VM."

  validation {
    condition     = contains(["nvidia-l4"], var.gpu_type)
    error_message = "gpu_type must be nvidia-l4 (the only GPU G2 machines carry)."
  }
}

variable "gpu_count" {
  type        = number
  description = "GPUs per VM; must match the G2 machine type (1 for g2-standard-4/8/12/16/32, 2 for -24, 4 for -48, 8 for -96)."

  validation {
    condition = var.gpu_count == lookup({
      "g2-standard-4"  = 1, "g2-standard-8" = 1, "g2-standard-12" = 1, "g2-standard-16" = 1, "g2-standard-32" = 1,
      "g2-standard-24" = 2, "g2-standard-48" = 4, "g2-standard-96" = 8,
    }, var.machine_type, var.gpu_count) && contains([1, 2, 4, 8], var.gpu_count)
    error_message = "gpu_count must match the G2 machine type: 1 for g2-standard-4/8/12/16/32, 2 for -24, 4 for -48, 8 for -96."
  }
}

variable "boot_image" {
  type        = string
  description = "Boot image (self link or project/family), normally a Deep Learning VM family with NVIDIA drivers."
}

variable "disk_size_gb" {
  type        = number
  description = "Boot disk size; holds the engine image, the gcsfuse file cache of the weights, and compile caches."

  validation {
    condition     = var.disk_size_gb >= 100 && var.disk_size_gb <= 4096
    error_message = "disk_size_gb must be between 100 and 4096."
  }
}

variable "disk_type" {
  type        = string
  description = "Boot disk type."

  validation {
    condition     = contains(["pd-balanced", "pd-ssd", "hyperdisk-balanced"], var.disk_type)
    error_message = "disk_type must be pd-balanced, pd-ssd or hyperdisk-balanced."
  }
}

variable "subnetwork" {
  type        = string
  description = "ID of the private subnet; VMs get only an internal IP there."
}

variable "subnetworks" {
  type        = map(string)
  description = "ID of the private subnet per region, for pools that span regions; a VM whose region is not listed uses subnetwork."
  default     = {}
}

variable "service_account" {
  type        = string
  description = "Email of the VMs' service account (publishes to the control topic, reads the models bucket)."
}

variable "controller" {
  type        = string
  description = "IAM member (serviceAccount:…) of the control plane, granted start/stop on exactly these VMs."
}

variable "instance_role" {
  type        = string
  description = "ID of the custom role with compute.instances.get/setScheduling/start/stop, granted per VM to the controller."
}

variable "startup_script" {
  type        = string
  description = "Contents of the agent's startup script (infra/agent/startup.sh)."
}

variable "shutdown_script" {
  type        = string
  description = "Contents of the agent's shutdown script (infra/agent/shutdown.sh)."
}

variable "agent" {
  type = object({
    project        = string
    control_topic  = string
    port           = number
    health_path    = string
    engine_image   = string
    engine_args    = list(string)
    models_bucket  = string
    model_path     = string
    drain_seconds  = number
    notice_seconds = optional(number, 30)
  })
  description = "Agent settings, written as spotgate-* metadata attributes that infra/agent/*.sh read from the metadata server."

  # shutdown.sh spends at most 5 s publishing draining and 3 s stopping the container, and keeps 2 s for the
  # power-off itself: the drain gets what is left of the notice (30 s for a SPOT preemption, longer when a
  # preemption notice is configured).
  validation {
    condition     = var.agent.drain_seconds >= 0 && var.agent.drain_seconds + 10 <= var.agent.notice_seconds
    error_message = "agent.drain_seconds must leave 10 s of the notice for publishing, stopping the engine and power-off (drain_seconds + 10 <= notice_seconds)."
  }

  validation {
    condition     = var.agent.port >= 1 && var.agent.port <= 65535
    error_message = "agent.port must be between 1 and 65535."
  }
}

variable "labels" {
  type        = map(string)
  description = "Extra labels for every VM (the spotgate-pool label is always set)."
  default     = {}
}
