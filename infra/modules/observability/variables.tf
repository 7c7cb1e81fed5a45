variable "project" {
  type        = string
  description = "Project ID the metrics, dashboard and alert policies live in."
}

variable "name" {
  type        = string
  description = "Prefix of metric names (NAME-gateway-requests, ...) and of alert display names."
}

variable "gateway_service" {
  type        = string
  description = "Cloud Run service name of the gateway (its access log feeds the request metrics)."
}

variable "function_services" {
  type        = list(string)
  description = "Cloud Run service names of the two functions (their logs feed the control-plane metrics)."

  validation {
    condition     = length(var.function_services) > 0
    error_message = "function_services must name at least one service."
  }
}

variable "notification_channels" {
  type        = list(string)
  description = "Notification channel IDs (projects/P/notificationChannels/N) every alert policy notifies; empty: alerts only show in the console."
  default     = []
}

variable "no_ready_minutes" {
  type        = number
  description = "Alert when a pool that should serve (min_ready >= 1, in active hours, not asleep) has had no ready backend for this long."
  default     = 10

  validation {
    condition     = var.no_ready_minutes >= 2 && var.no_ready_minutes <= 1440
    error_message = "no_ready_minutes must be between 2 and 1440."
  }
}

variable "overflow_warm_hours" {
  type        = number
  description = "Alert when a pool's overflow service has stayed warm (min instances 1, billed) this long."
  default     = 2

  validation {
    condition     = var.overflow_warm_hours >= 1 && var.overflow_warm_hours <= 23
    error_message = "overflow_warm_hours must be between 1 and 23 (a condition lasts at most a day)."
  }
}

variable "idle_minutes" {
  type        = number
  description = "Alert when VMs beyond min_ready have run without traffic past their idle timeout for this long (the control plane should have stopped them)."
  default     = 10

  validation {
    condition     = var.idle_minutes >= 2 && var.idle_minutes <= 1440
    error_message = "idle_minutes must be between 2 and 1440."
  }
}

variable "function_error_ratio" {
  type        = number
  description = "Alert when more than this share of the functions' deliveries fail (5xx) over 10 minutes."
  default     = 0.1

  validation {
    condition     = var.function_error_ratio > 0 && var.function_error_ratio < 1
    error_message = "function_error_ratio must be between 0 and 1."
  }
}

variable "gateway_5xx_ratio" {
  type        = number
  description = "Alert when more than this share of the gateway's answers are 5xx over 5 minutes."
  default     = 0.05

  validation {
    condition     = var.gateway_5xx_ratio > 0 && var.gateway_5xx_ratio < 1
    error_message = "gateway_5xx_ratio must be between 0 and 1."
  }
}

variable "labels" {
  type        = map(string)
  description = "User labels for the alert policies."
  default     = {}
}
