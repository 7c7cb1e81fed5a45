# The fleet: how the pools variable becomes SPOTGATE_FLEET, the VM list of every pool and the engine flags.
# This file references only variables and these locals (plus local.overflow_urls from main.tf), so the
# offline tests evaluate it with `terraform console` against the example tfvars and validate the result with
# spotgate.fleet.FleetConfig: the JSON the functions receive is proven, not assumed.

locals {
  # The controller reads GCE's capacity advice only for pools that ask for it (iam.tf grants it then only).
  capacity_advice_wanted = anytrue([for p in var.pools : p.capacity_advice])

  # A pool's spot group expands exactly as spotgate.fleet.PoolSpec does (<prefix>-<zone suffix>-<n>), and
  # the fleet JSON lists the expanded VMs: the names Terraform creates are the names the control plane reads.
  pool_vms = {
    for p in var.pools : p.name => concat(
      p.spot == null ? [] : flatten([
        for zone in p.spot.zones : [
          for n in range(1, p.spot.per_zone + 1) : {
            name               = "${coalesce(p.spot.name_prefix, p.name)}-${reverse(split("-", zone))[0]}-${n}"
            zone               = zone
            provisioning_model = "SPOT"
          }
        ]
      ]),
      [for vm in p.vms : { name = vm.name, zone = vm.zone, provisioning_model = vm.provisioning_model }],
    )
  }

  # vLLM gets the standard flags from the pool (weights path in the mounted bucket, every model name it
  # answers to, the port); "custom" engines get their args verbatim. On a VM the engine listens on the pool's
  # port; the overflow container always listens on 8080 (Cloud Run's PORT).
  engine_args = {
    for p in var.pools : p.name => {
      vm = p.serving.kind == "vllm" ? concat(
        ["--model", "/models/${p.serving.model_path}", "--served-model-name", p.model], p.aliases,
        ["--host", "0.0.0.0", "--port", tostring(p.engine.port)], p.serving.args,
      ) : p.serving.args
      overflow = p.serving.kind == "vllm" ? concat(
        ["--model", "/models/${p.serving.model_path}", "--served-model-name", p.model], p.aliases,
        ["--host", "0.0.0.0", "--port", "8080"], p.serving.args,
      ) : p.serving.args
    }
  }

  # The fleet as spotgate.fleet.FleetConfig reads it: only FleetConfig keys (infrastructure-only parts of
  # the pools variable are dropped), the spot group already expanded, overflow URLs from the real services.
  fleet = {
    project = var.project
    region  = var.region
    regions = sort(keys(var.network.regions))
    prices  = var.prices
    pools = [
      for p in var.pools : {
        name                 = p.name
        model                = p.model
        aliases              = p.aliases
        vms                  = local.pool_vms[p.name]
        engine               = p.engine
        min_ready            = p.min_ready
        max_ready            = p.max_ready
        target_inflight      = p.target_inflight
        scale_down_ratio     = p.scale_down_ratio
        min_uptime           = p.min_uptime
        idle_timeout         = p.idle_timeout
        drain_grace          = p.drain_grace
        drain_timeout        = p.drain_timeout
        boot_timeout         = p.boot_timeout
        wake_hold            = p.wake_hold
        stockout_cooldown    = p.stockout_cooldown
        preemption_notice    = p.preemption_notice
        capacity_advice      = p.capacity_advice ? { machine_type = p.host.machine_type } : null
        preemption_half_life = p.preemption_half_life
        stockout_weight      = p.stockout_weight
        spare                = p.spare
        replay_unanswered    = p.replay_unanswered
        passthrough          = p.passthrough
        continuation         = coalesce(p.continuation, p.serving.kind == "vllm") # needs continue_final_message
        active_hours         = p.active_hours
        fallback             = p.fallback
        overflow = p.overflow == null ? null : {
          service  = p.overflow.service
          url      = local.overflow_urls[p.name]
          cooldown = p.overflow.cooldown
          warm     = p.overflow.warm
          region   = var.region
        }
      }
    ]
  }

  # One Scheduler job per (pool, kind, cron entry), keyed "<kind>-<pool>-<n>" (also the job name suffix).
  scheduled_jobs = merge(flatten([
    for p in var.pools : [
      for kind in ["sleep", "wake"] : {
        for i, cron in p.schedule[kind] : "${kind}-${p.name}-${i}" => {
          kind      = kind
          pool      = p.name
          schedule  = cron
          time_zone = p.schedule.time_zone
        }
      }
    ]
  ])...)

}
