variable "project" {
  type        = string
  description = "Project ID of the overflow service."
}

variable "region" {
  type        = string
  description = "Region of the service; it must offer Cloud Run L4 GPUs (e.g. us-central1, europe-west4)."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must look like us-central1."
  }
}

variable "service" {
  type        = string
  description = "Cloud Run service name (the pool's overflow.service in the fleet)."

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$", var.service))
    error_message = "service must be a valid Cloud Run service name (up to 49 characters)."
  }
}

variable "pool" {
  type        = string
  description = "Pool this service overflows for (a label)."
}

variable "image" {
  type        = string
  description = "Engine image (an OpenAI-compatible server, e.g. vllm/vllm-openai:TAG)."
}

variable "args" {
  type        = list(string)
  description = "Container arguments (the engine flags: model path under /models, served names, port 8080)."
}

variable "health_path" {
  type        = string
  description = "Engine health path, used as the startup probe."
  default     = "/health"

  validation {
    condition     = can(regex("^/[A-Za-z0-9/_.-]*$", var.health_path))
    error_message = "health_path must be an absolute URL path."
  }
}

variable "gpu_type" {
  type        = string
  description = "Cloud Run GPU (node_selector accelerator): nvidia-l4 (24 GB, needs 4 vCPU / 16Gi) or nvidia-rtx-pro-6000 (96 GB, needs 20 vCPU / 80Gi)."
  default     = "nvidia-l4"

  validation {
    condition     = contains(["nvidia-l4", "nvidia-rtx-pro-6000"], var.gpu_type)
    error_message = "gpu_type must be nvidia-l4 or nvidia-rtx-pro-6000 (the GPUs Cloud Run offers)."
  }
}

variable "cpu" {
  type        = string
  description = "vCPUs per instance (at least 4 with an L4, 20 with an RTX PRO 6000)."
  default     = "8"

  validation {
    condition     = can(tonumber(var.cpu)) && try(tonumber(var.cpu) >= (var.gpu_type == "nvidia-l4" ? 4 : 20), false)
    error_message = "cpu must be at least 4 with nvidia-l4 and at least 20 with nvidia-rtx-pro-6000."
  }
}

variable "memory" {
  type        = string
  description = "Memory per instance (at least 16Gi with an L4, 80Gi with an RTX PRO 6000)."
  default     = "32Gi"

  validation {
    condition     = can(regex("^[0-9]+Gi$", var.memory)) && try(tonumber(trimsuffix(var.memory, "Gi")) >= (var.gpu_type == "nvidia-l4" ? 16 : 80), false)
    error_message = "memory must be whole Gi: at least 16Gi with nvidia-l4 and at least 80Gi with nvidia-rtx-pro-6000."
  }
}

variable "max_instances" {
  type        = number
  description = "Upper bound on GPU instances (each is one L4 billed per second while up)."
  default     = 1

  validation {
    condition     = var.max_instances >= 1 && var.max_instances <= 10
    error_message = "max_instances must be between 1 and 10."
  }
}

variable "concurrency" {
  type        = number
  description = "Concurrent requests per instance (the engine batches them on one GPU)."
  default     = 16

  validation {
    condition     = var.concurrency >= 1 && var.concurrency <= 1000
    error_message = "concurrency must be between 1 and 1000."
  }
}

variable "models_bucket" {
  type        = string
  description = "Bucket mounted read-only at /models (the same weights the VMs serve)."
}

variable "service_account" {
  type        = string
  description = "Email the overflow service runs as (reads the models bucket)."
}

variable "invoker" {
  type        = string
  description = "IAM member allowed to call the service: the gateway's service account, nobody else."
}

variable "controller" {
  type        = string
  description = "IAM member of the control plane, granted get/update on this service to flip min instances."
}

variable "scaler_role" {
  type        = string
  description = "ID of the custom role with run.services.get/update, granted on this service to the controller."
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
