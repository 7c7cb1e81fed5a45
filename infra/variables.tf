variable "project" {
  type        = string
  description = "GCP project ID everything is created in (also the fleet's project)."

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.project))
    error_message = "project must be a GCP project ID (6-30 characters: lowercase letters, digits, hyphens)."
  }
}

variable "region" {
  type        = string
  description = "Region of the VMs (every pool zone must be in it), functions, gateway, overflow and buckets."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must look like us-central1."
  }
}

variable "name" {
  type        = string
  description = "Prefix of resource names (topics NAME-compute/NAME-control, NAME-gateway, NAME-vpc, ...)."
  default     = "spotgate"

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{2,11}$", var.name))
    error_message = "name must be 3-12 characters of lowercase letters, digits and hyphens, starting with a letter (service account IDs NAME-vm need 6)."
  }
}

variable "pools" {
  description = <<-EOT
    The fleet's pools, mirroring spotgate.fleet.PoolSpec (the same keys and defaults), plus three
    infrastructure-only parts: `serving` (engine image, model path in the models bucket, extra flags),
    `host` (VM machine and boot image) and `schedule` (nightly sleep / morning wake Scheduler jobs); `overflow` adds the Cloud Run
    GPU settings (gpu_type nvidia-l4 or nvidia-rtx-pro-6000, image, cpu, memory, max_instances, concurrency) to the fleet's service/cooldown.
    Terraform renders the fleet part to SPOTGATE_FLEET, so this variable is the one source of truth.
  EOT
  type = list(object({
    name    = string
    model   = string
    aliases = optional(list(string), [])
    vms = optional(list(object({
      name               = string
      zone               = string
      provisioning_model = optional(string, "SPOT")
    })), [])
    spot = optional(object({
      zones       = list(string)
      per_zone    = optional(number, 1)
      name_prefix = optional(string)
    }))
    engine = optional(object({
      port        = optional(number, 8000)
      health_path = optional(string, "/health")
    }), {})
    min_ready         = optional(number, 0)
    max_ready         = optional(number, 1)
    target_inflight   = optional(number, 8)
    scale_down_ratio  = optional(number, 0.5) # hysteresis: let a VM go at target_inflight x this per VM
    min_uptime        = optional(string, "10m")
    idle_timeout      = optional(string, "15m")
    drain_grace       = optional(string, "30s")
    drain_timeout     = optional(string, "5m")
    boot_timeout      = optional(string, "10m")
    wake_hold         = optional(string, "30s")
    stockout_cooldown = optional(string, "5m")
    # GCE's early preemption notice for the pool's SPOT VMs (e.g. "120s"); applied by the control plane
    # with instances.setScheduling before each start, because the pinned provider has no such field.
    preemption_notice = optional(string)
    # Continue a stream cut mid-answer on another backend; null: on for vLLM engines, off for custom ones.
    continuation = optional(bool)
    # Rank zones for SPOT starts by GCE's advice.capacity for the pool's host.machine_type; iam.tf then grants
    # the controller read access to the advice API (custom role capacity_advisor).
    capacity_advice = optional(bool, false)
    # Extra SPOT VMs kept ready while requests are in flight (over-provisioning against preemptions).
    spare = optional(number, 0)
    # Send a non-streaming inference request again to another backend when the first read it and closed
    # without answering (at-most-once otherwise; never for pass-through).
    replay_unanswered = optional(bool, false)
    # What /pools/<pool>/... may call on the pool's backends: nothing unless listed (engines expose
    # administrative paths such as vLLM's /metrics, LoRA loading or /sleep). Keys also need --passthrough.
    passthrough = optional(object({
      methods       = optional(list(string), ["GET", "POST"])
      path_prefixes = optional(list(string), [])
    }), {})
    # Half-life of a preemption in the zone ranking for SPOT starts (spotgate.fleet.HALF_LIFE_DEFAULT).
    preemption_half_life = optional(string, "15m")
    # What one remembered SPOT stockout counts against its zone in that ranking, in preemptions; 0: only the
    # stockout_cooldown (spotgate.fleet.STOCKOUT_WEIGHT_DEFAULT).
    stockout_weight = optional(number, 0)
    active_hours = optional(object({
      timezone = optional(string, "UTC")
      windows = list(object({
        days  = optional(list(string), ["mon", "tue", "wed", "thu", "fri", "sat", "sun"])
        start = string
        end   = string
      }))
    }))
    fallback = optional(object({
      enabled = optional(bool, false)
      after   = optional(string, "0s")
    }), {})
    overflow = optional(object({
      service       = string
      cooldown      = optional(string, "10m")
      image         = optional(string)
      gpu_type      = optional(string, "nvidia-l4")
      cpu           = optional(string, "8")
      memory        = optional(string, "32Gi")
      max_instances = optional(number, 1)
      concurrency   = optional(number, 16)
      # "always": every gap warms it; "recent_demand": only with a request within the pool's idle_timeout.
      warm = optional(string, "always")
    }))
    serving = object({
      image      = string
      model_path = string
      kind       = optional(string, "vllm")
      args       = optional(list(string), [])
    })
    host = optional(object({
      machine_type  = optional(string, "g2-standard-8")
      gpu_count     = optional(number, 1)
      disk_size_gb  = optional(number, 200)
      disk_type     = optional(string, "pd-balanced")
      image_family  = optional(string, "common-cu124-debian-11-py310")
      image_project = optional(string, "deeplearning-platform-release")
    }), {})
    schedule = optional(object({
      sleep     = optional(list(string), [])
      wake      = optional(list(string), [])
      time_zone = optional(string, "UTC")
    }), {})
  }))

  validation {
    condition     = length(var.pools) > 0 && length(distinct([for p in var.pools : p.name])) == length(var.pools)
    error_message = "pools must be non-empty with unique names."
  }

  validation {
    condition     = alltrue([for p in var.pools : can(regex("^[a-z][a-z0-9-]{0,30}$", p.name))])
    error_message = "every pool name must match ^[a-z][a-z0-9-]{0,30}$."
  }

  validation {
    condition     = alltrue([for p in var.pools : length(p.vms) > 0 || p.spot != null])
    error_message = "every pool needs at least one VM (vms or spot)."
  }

  validation {
    condition     = alltrue(flatten([for p in var.pools : [for vm in p.vms : contains(["SPOT", "STANDARD"], vm.provisioning_model)]]))
    error_message = "every VM's provisioning_model must be SPOT or STANDARD."
  }

  validation {
    condition = alltrue(flatten([for p in var.pools : [
      for z in concat([for vm in p.vms : vm.zone], p.spot == null ? [] : p.spot.zones) :
      contains(concat([var.region], keys(var.network.regions)), regex("^(.+)-[a-z]$", z)[0])
    ]]))
    error_message = "every VM zone must be in var.region or in a region of var.network.regions."
  }

  validation {
    condition     = alltrue([for p in var.pools : p.min_ready >= 0 && p.min_ready <= p.max_ready && p.max_ready >= 1 && p.target_inflight >= 1])
    error_message = "every pool needs 0 <= min_ready <= max_ready, max_ready >= 1 and target_inflight >= 1."
  }

  validation {
    condition     = alltrue([for p in var.pools : p.max_ready <= length(p.vms) + (p.spot == null ? 0 : length(p.spot.zones) * p.spot.per_zone)])
    error_message = "a pool's max_ready must not exceed its number of VMs."
  }

  validation {
    condition     = alltrue([for p in var.pools : !p.fallback.enabled || anytrue([for vm in p.vms : vm.provisioning_model == "STANDARD"])])
    error_message = "fallback.enabled needs a VM with provisioning_model STANDARD in the pool's vms."
  }

  validation {
    condition = alltrue(flatten([for p in var.pools : [
      for d in concat(
        [p.idle_timeout, p.drain_grace, p.drain_timeout, p.min_uptime, p.boot_timeout, p.wake_hold, p.stockout_cooldown, p.fallback.after],
        p.overflow == null ? [] : [p.overflow.cooldown],
        p.preemption_notice == null ? [] : [p.preemption_notice],
      ) : can(regex("^([0-9]+(\\.[0-9]+)?(ms|s|m|h|d))+$|^[0-9]+$", d))
    ]]))
    error_message = "durations must be seconds (\"90\") or have units (\"90s\", \"15m\", \"1h30m\")."
  }

  validation {
    condition     = alltrue([for p in var.pools : p.scale_down_ratio > 0 && p.scale_down_ratio < 1])
    error_message = "scale_down_ratio must be between 0 and 1 (exclusive)."
  }

  validation {
    condition     = alltrue([for p in var.pools : p.engine.port >= 1 && p.engine.port <= 65535 && can(regex("^/[A-Za-z0-9/_.-]*$", p.engine.health_path))])
    error_message = "engine.port must be 1-65535 and engine.health_path an absolute path."
  }

  validation {
    condition     = alltrue([for p in var.pools : contains(["vllm", "custom"], p.serving.kind)])
    error_message = "serving.kind must be \"vllm\" (standard flags added) or \"custom\" (args used verbatim)."
  }

  validation {
    condition     = alltrue([for p in var.pools : can(regex("^[A-Za-z0-9][A-Za-z0-9._/-]*$", p.serving.model_path)) && !strcontains(p.serving.model_path, "..")])
    error_message = "serving.model_path must be a relative path inside the models bucket, like llama-3.1-8b-instruct/2024-07-23."
  }

  validation {
    condition = alltrue(flatten([for p in var.pools : p.active_hours == null ? [true] : [
      for w in p.active_hours.windows : alltrue([for d in w.days : contains(["mon", "tue", "wed", "thu", "fri", "sat", "sun"], d)])
      && can(regex("^[0-2][0-9]:[0-5][0-9]$", w.start)) && can(regex("^[0-2][0-9]:[0-5][0-9]$", w.end))
    ]]))
    error_message = "active_hours windows need days from mon..sun and start/end as HH:MM."
  }

  validation {
    condition     = alltrue([for p in var.pools : p.overflow == null ? true : can(regex("^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$", p.overflow.service))])
    error_message = "overflow.service must be a valid Cloud Run service name."
  }

  # G2 machine types carry a fixed number of L4s; a mismatch fails only at instance creation.
  validation {
    condition = alltrue([for p in var.pools : p.host.gpu_count == lookup({
      "g2-standard-4"  = 1, "g2-standard-8" = 1, "g2-standard-12" = 1, "g2-standard-16" = 1, "g2-standard-32" = 1,
      "g2-standard-24" = 2, "g2-standard-48" = 4, "g2-standard-96" = 8,
    }, p.host.machine_type, -1)])
    error_message = "host.gpu_count must match the G2 machine type: 1 for g2-standard-4/8/12/16/32, 2 for -24, 4 for -48, 8 for -96."
  }

  # VM and overflow service names are project-wide (per zone / per region): two pools must never share one,
  # or the second pool's resources would collide with (or the control plane would act on) the first's.
  validation {
    condition = length(flatten([for p in var.pools : concat(
      [for vm in p.vms : vm.name],
      p.spot == null ? [] : flatten([for zone in p.spot.zones : [for n in range(1, p.spot.per_zone + 1) : "${coalesce(p.spot.name_prefix, p.name)}-${reverse(split("-", zone))[0]}-${n}"]]),
      )])) == length(distinct(flatten([for p in var.pools : concat(
        [for vm in p.vms : vm.name],
        p.spot == null ? [] : flatten([for zone in p.spot.zones : [for n in range(1, p.spot.per_zone + 1) : "${coalesce(p.spot.name_prefix, p.name)}-${reverse(split("-", zone))[0]}-${n}"]]),
    )])))
    error_message = "VM names must be unique across all pools (explicit vms and expanded spot groups)."
  }

  validation {
    condition     = length([for p in var.pools : p.overflow.service if p.overflow != null]) == length(distinct([for p in var.pools : p.overflow.service if p.overflow != null]))
    error_message = "overflow.service names must be unique across pools."
  }

  # Cloud Run offers two GPU types, each with a minimum instance size (4 vCPU / 16 GiB for the L4, 20 vCPU /
  # 80 GiB for the RTX PRO 6000); a smaller instance is rejected by the API at deploy time.
  validation {
    condition = alltrue([for p in var.pools : p.overflow == null ? true : (
      contains(["nvidia-l4", "nvidia-rtx-pro-6000"], p.overflow.gpu_type) &&
      tonumber(p.overflow.cpu) >= (p.overflow.gpu_type == "nvidia-l4" ? 4 : 20) &&
      can(regex("^[0-9]+Gi$", p.overflow.memory)) &&
      try(tonumber(trimsuffix(p.overflow.memory, "Gi")), 0) >= (p.overflow.gpu_type == "nvidia-l4" ? 16 : 80)
    )])
    error_message = "overflow.gpu_type must be nvidia-l4 (at least cpu \"4\" and memory \"16Gi\") or nvidia-rtx-pro-6000 (at least cpu \"20\" and memory \"80Gi\")."
  }
}

variable "prices" {
  type = object({
    spot_per_hour     = optional(number, 0.28)
    standard_per_hour = optional(number, 0.71)
    overflow_per_hour = optional(number, 0.80)
  })
  description = "USD per GPU-hour for cost reports (passed into the fleet JSON)."
  default     = {}

  validation {
    condition     = var.prices.spot_per_hour >= 0 && var.prices.standard_per_hour >= 0 && var.prices.overflow_per_hour >= 0
    error_message = "prices must not be negative."
  }
}

variable "models_bucket" {
  type        = string
  description = "Name of the models bucket; null means PROJECT-NAME-models."
  default     = null
}

variable "firestore_database" {
  type        = string
  description = "Firestore database ID for spotgate's store."
  default     = "spotgate"
}

variable "firestore_location" {
  type        = string
  description = "Firestore location; null means var.region."
  default     = null
}

variable "gateway_image" {
  type        = string
  description = "Gateway image for the first apply; null starts the service with Google's sample image until Cloud Build deploys REGION-docker.pkg.dev/PROJECT/REPO/gateway."
  default     = null
}

variable "gateway_egress" {
  type        = string
  description = "How the gateway reaches the VMs: \"connector\" (Serverless VPC Access, default) or \"direct\" (Direct VPC egress)."
  default     = "connector"

  validation {
    condition     = contains(["connector", "direct"], var.gateway_egress)
    error_message = "gateway_egress must be \"connector\" or \"direct\"."
  }
}

variable "gateway_max_instances" {
  type        = number
  description = "Upper bound on gateway instances."
  default     = 10

  validation {
    condition     = var.gateway_max_instances >= 1 && var.gateway_max_instances <= 1000
    error_message = "gateway_max_instances must be between 1 and 1000."
  }
}

variable "gateway_concurrency" {
  type        = number
  description = "Concurrent requests (mostly idle SSE streams) per gateway instance."
  default     = 1000

  validation {
    condition     = var.gateway_concurrency >= 1 && var.gateway_concurrency <= 1000
    error_message = "gateway_concurrency must be between 1 and 1000."
  }
}

variable "gateway_allowed_principals" {
  type        = list(string)
  description = "Google identities allowed to call the gateway with an ID token (emails or \"@domain\")."
  default     = []

  validation {
    condition     = alltrue([for p in var.gateway_allowed_principals : can(regex("^([^@\\s]+)?@[^@\\s]+\\.[^@\\s]+$", p))])
    error_message = "each principal must be an email or \"@domain.tld\"."
  }
}

variable "gateway_audiences" {
  type        = list(string)
  description = "Extra ID-token audiences the gateway accepts besides its own URL."
  default     = []
}

variable "network" {
  type = object({
    subnet_cidr        = optional(string, "10.20.0.0/20")
    connector_cidr     = optional(string, "10.20.16.0/28")
    direct_egress_cidr = optional(string, "10.20.32.0/24")
    # Further regions where pools may place VMs (a pool may span regions of the VPC), each with its VM
    # subnet's range; each gets a subnet, a router and a Cloud NAT. The fleet's `regions` are these keys.
    regions = optional(map(string), {})
  })
  description = "Address ranges of the VM subnet, the VPC connector (/28), the Direct VPC egress subnet, and the VM subnet of each further region (regions)."
  default     = {}
}

variable "tick_schedule" {
  type        = string
  description = "Cron schedule of the reconcile tick."
  default     = "* * * * *"

  validation {
    condition     = length(split(" ", trimspace(var.tick_schedule))) == 5
    error_message = "tick_schedule must be a 5-field cron expression."
  }
}

variable "log_level" {
  type        = string
  description = "Log level of the functions and the gateway (SPOTGATE_LOG_LEVEL)."
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "functions_source_dir" {
  type        = string
  description = "Path of the functions/ directory to deploy first; null means ../functions next to this module."
  default     = null
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the Firestore database and Cloud Run services against deletion."
  default     = true
}

variable "labels" {
  type        = map(string)
  description = "Labels added to every labelled resource."
  default     = {}
}

variable "pubsub_token_creator_grant" {
  type        = bool
  description = "Grant the Pub/Sub service agent roles/iam.serviceAccountTokenCreator on the trigger account. Needed only in projects created before April 2021; off by default because it names a Google service agent, which the iam.allowedPolicyMemberDomains org policy may refuse."
  default     = false
}

variable "alerts" {
  type = object({
    notification_channels = optional(list(string), [])
    no_ready_minutes      = optional(number, 10)
    overflow_warm_hours   = optional(number, 2)
    idle_minutes          = optional(number, 10)
    function_error_ratio  = optional(number, 0.1)
    gateway_5xx_ratio     = optional(number, 0.05)
  })
  description = "Alert policies: notification channel IDs (projects/P/notificationChannels/N) they notify, and their thresholds (see modules/observability)."
  default     = {}
}
