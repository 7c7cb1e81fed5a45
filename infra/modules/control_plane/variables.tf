variable "project" {
  type        = string
  description = "Project ID of the control plane."
}

variable "region" {
  type        = string
  description = "Region of the functions, their triggers and the Scheduler jobs."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must look like us-central1."
  }
}

variable "name" {
  type        = string
  description = "Prefix of the topics, sink, jobs and functions (topics are NAME-compute and NAME-control)."
  default     = "spotgate"

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{0,20}$", var.name))
    error_message = "name must be 1-21 characters of lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "environment" {
  type        = map(string)
  description = "SPOTGATE_* environment of both functions (fleet JSON, store, topics); the topic names are added here."
}

variable "source_dir" {
  type        = string
  description = "Path of the functions/ directory (main.py, requirements.txt and the spotgate library)."
}

variable "source_bucket" {
  type        = string
  description = "Bucket the functions' source archive is uploaded to."
}

variable "runtime_service_account" {
  type        = string
  description = "Email the functions run as (the controller)."
}

variable "tasks_service_account" {
  type        = string
  description = "Email whose OAuth token the wake-up tasks publish to the control topic with (the controller acts as it)."

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]@[-a-z0-9.]+\\.iam\\.gserviceaccount\\.com$", var.tasks_service_account))
    error_message = "tasks_service_account must be a service account email (NAME@PROJECT.iam.gserviceaccount.com)."
  }
}

variable "trigger_service_account" {
  type        = string
  description = "Email Eventarc uses to invoke the functions (granted roles/run.invoker on them)."
}

variable "build_service_account" {
  type        = string
  description = "Full resource ID (projects/P/serviceAccounts/EMAIL) Cloud Functions builds run as."
}

variable "vpc_connector" {
  type        = string
  description = "Serverless VPC Access connector ID, so the functions can probe the VMs' private engine ports."
}

variable "control_publishers" {
  type        = map(string)
  description = "Who may publish to the control topic: a static key (vm, gateway, controller) => IAM member."
}

variable "tick_schedule" {
  type        = string
  description = "Cron schedule of the reconcile tick (every minute by default; ticks repair missed events)."
  default     = "* * * * *"
}

variable "scheduled_jobs" {
  type = map(object({
    kind      = string
    pool      = string
    schedule  = string
    time_zone = string
  }))
  description = "Per-pool Scheduler jobs: a key => kind (\"sleep\": stop idle VMs until the next wake or request; \"wake\": pre-warm), pool, cron schedule, IANA time zone."
  default     = {}

  validation {
    condition     = alltrue([for job in values(var.scheduled_jobs) : contains(["sleep", "wake"], job.kind)])
    error_message = "every scheduled job's kind must be sleep or wake."
  }

  validation {
    condition     = alltrue([for job in values(var.scheduled_jobs) : length(split(" ", trimspace(job.schedule))) == 5])
    error_message = "every scheduled job needs a 5-field cron schedule."
  }
}

variable "function_memory" {
  type        = string
  description = "Memory of each function instance."
  default     = "512Mi"

  validation {
    condition     = contains(["256Mi", "512Mi", "1Gi", "2Gi"], var.function_memory)
    error_message = "function_memory must be one of 256Mi, 512Mi, 1Gi, 2Gi."
  }
}

variable "function_max_instances" {
  type        = number
  description = "Upper bound on instances per function (a burst of preemptions across pools)."
  default     = 10

  validation {
    condition     = var.function_max_instances >= 1 && var.function_max_instances <= 100
    error_message = "function_max_instances must be between 1 and 100."
  }
}

variable "labels" {
  type        = map(string)
  description = "Labels for topics and functions."
  default     = {}
}
