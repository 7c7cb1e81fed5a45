# What an operator watches: log-based metrics from spotgate's structured logs (the gateway's access line, the
# control plane's plan and action lines) and Compute Engine's system-event audit log, one dashboard, and alert
# policies that page through var.notification_channels.
#
# Field names are the ones the code logs (run_service/gateway/access.py Exchange.fields,
# functions/spotgate/core/health.py pool_health and the control plane's "action issued" / "start failed"
# lines); tests/infra/test_observability.py checks that every jsonPayload field used here is one of them.

locals {
  user_metric = "logging.googleapis.com/user/${var.name}"

  gateway_logs = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${var.gateway_service}\"",
    "jsonPayload.message=\"access\"",
  ])
  control_logs = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=(${join(" OR ", [for s in var.function_services : "\"${s}\""])})",
  ])
  plan_logs = "${local.control_logs} AND jsonPayload.message=~\"^plan for \""

  # Every metric: filter, kind (counter or distribution of a field), labels and their extractors.
  metrics = {
    gateway-requests = {
      description = "Gateway requests by pool, backend kind (vm/overflow) and HTTP status."
      filter      = local.gateway_logs
      value       = null
      unit        = null
      buckets     = null
      labels = {
        pool         = "EXTRACT(jsonPayload.pool)"
        backend_kind = "EXTRACT(jsonPayload.backend_kind)"
        status       = "EXTRACT(jsonPayload.status)"
      }
    }
    gateway-ttfb = {
      description = "Gateway time to first byte from the backend, in ms, by pool and backend kind."
      filter      = "${local.gateway_logs} AND jsonPayload.ttfb_ms>=0"
      value       = "EXTRACT(jsonPayload.ttfb_ms)"
      unit        = "ms"
      buckets     = "exponential"
      labels = {
        pool         = "EXTRACT(jsonPayload.pool)"
        backend_kind = "EXTRACT(jsonPayload.backend_kind)"
      }
    }
    gateway-held = {
      description = "Requests the gateway held while a backend woke up, by pool and final status."
      filter      = "${local.gateway_logs} AND jsonPayload.held=true"
      value       = null
      unit        = null
      buckets     = null
      labels = {
        pool   = "EXTRACT(jsonPayload.pool)"
        status = "EXTRACT(jsonPayload.status)"
      }
    }
    gateway-refused = {
      description = "Requests the gateway refused: rate limited (429) or no backend could take them (503), by pool."
      filter      = "${local.gateway_logs} AND (jsonPayload.status=429 OR jsonPayload.status=503)"
      value       = null
      unit        = null
      buckets     = null
      labels = {
        pool   = "EXTRACT(jsonPayload.pool)"
        status = "EXTRACT(jsonPayload.status)"
      }
    }
    control-actions = {
      description = "Control-plane actions issued, by pool and kind (start, stop, overflow)."
      filter      = "${local.control_logs} AND jsonPayload.message=\"action issued\""
      value       = null
      unit        = null
      buckets     = null
      labels = {
        pool   = "EXTRACT(jsonPayload.pool)"
        action = "EXTRACT(jsonPayload.action)"
      }
    }
    start-failures = {
      description = "VM starts that failed, by pool and reason (GCE error code, e.g. ZONE_RESOURCE_POOL_EXHAUSTED)."
      filter      = "${local.control_logs} AND (jsonPayload.message=~\"^start failed\" OR (jsonPayload.message=~\"^action failed\" AND jsonPayload.action=\"start\"))"
      value       = null
      unit        = null
      buckets     = null
      labels = {
        pool   = "EXTRACT(jsonPayload.pool)"
        reason = "EXTRACT(jsonPayload.reason)"
      }
    }
    preemptions = {
      description = "SPOT preemptions by zone and VM, from Compute Engine's system-event audit log."
      filter = join(" AND ", [
        "logName=\"projects/${var.project}/logs/cloudaudit.googleapis.com%2Fsystem_event\"",
        "resource.type=\"gce_instance\"",
        "protoPayload.methodName=\"compute.instances.preempted\"",
      ])
      value   = null
      unit    = null
      buckets = null
      labels = {
        zone     = "EXTRACT(resource.labels.zone)"
        instance = "REGEXP_EXTRACT(protoPayload.resourceName, \"instances/([^/]+)$\")"
      }
    }
    pool-ready-backends = {
      description = "Ready backends (VMs and warm overflow) per pool at each reconcile; expects_ready says whether the pool should have one."
      filter      = local.plan_logs
      value       = "EXTRACT(jsonPayload.ready_backends)"
      unit        = null
      buckets     = "linear"
      labels = {
        pool          = "EXTRACT(jsonPayload.pool)"
        expects_ready = "EXTRACT(jsonPayload.expects_ready)"
      }
    }
    pool-overflow-warm = {
      description = "1 while a pool's overflow service is warm (min instances 1, billed), 0 otherwise, at each reconcile."
      filter      = local.plan_logs
      value       = "EXTRACT(jsonPayload.overflow_warm)"
      unit        = null
      buckets     = "linear"
      labels      = { pool = "EXTRACT(jsonPayload.pool)" }
    }
    pool-idle-vms = {
      description = "VMs beyond min_ready running without traffic past the idle timeout, at each reconcile."
      filter      = local.plan_logs
      value       = "EXTRACT(jsonPayload.idle_vms)"
      unit        = null
      buckets     = "linear"
      labels      = { pool = "EXTRACT(jsonPayload.pool)" }
    }
  }
}

resource "google_logging_metric" "metric" {
  for_each = local.metrics

  project          = var.project
  name             = "${var.name}-${each.key}"
  description      = each.value.description
  filter           = each.value.filter
  value_extractor  = each.value.value
  label_extractors = each.value.labels

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = each.value.value == null ? "INT64" : "DISTRIBUTION"
    unit         = coalesce(each.value.unit, "1")
    display_name = "spotgate ${each.key}"

    dynamic "labels" {
      for_each = keys(each.value.labels)
      content {
        key         = labels.value
        value_type  = "STRING"
        description = "From the log entry: ${each.value.labels[labels.value]}."
      }
    }
  }

  dynamic "bucket_options" {
    for_each = each.value.buckets == "exponential" ? [1] : []
    content {
      exponential_buckets {
        num_finite_buckets = 32
        growth_factor      = 1.5
        scale              = 10
      }
    }
  }

  dynamic "bucket_options" {
    for_each = each.value.buckets == "linear" ? [1] : []
    content {
      linear_buckets {
        num_finite_buckets = 16
        width              = 1
        offset             = 0
      }
    }
  }
}

locals {
  # Dashboard tiles: one chart each, by title -> (metric filter, aligner, reducer, group-by labels).
  charts = [
    { title = "Requests by pool, backend kind and status (per minute)", filter = "metric.type=\"${local.user_metric}-gateway-requests\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group = ["metric.label.pool", "metric.label.backend_kind", "metric.label.status"] },
    { title = "Time to first byte p95 (ms)", filter = "metric.type=\"${local.user_metric}-gateway-ttfb\"", aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_95", group = ["metric.label.pool", "metric.label.backend_kind"] },
    { title = "Ready backends per pool", filter = "metric.type=\"${local.user_metric}-pool-ready-backends\"", aligner = "ALIGN_PERCENTILE_50", reducer = "REDUCE_MAX", group = ["metric.label.pool"] },
    { title = "Held requests (a backend was waking)", filter = "metric.type=\"${local.user_metric}-gateway-held\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group = ["metric.label.pool", "metric.label.status"] },
    { title = "Refused requests (429 rate limit, 503 no backend)", filter = "metric.type=\"${local.user_metric}-gateway-refused\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group = ["metric.label.pool", "metric.label.status"] },
    { title = "Control-plane actions by kind", filter = "metric.type=\"${local.user_metric}-control-actions\"", aligner = "ALIGN_DELTA", reducer = "REDUCE_SUM", group = ["metric.label.pool", "metric.label.action"] },
    { title = "Preemptions by zone", filter = "metric.type=\"${local.user_metric}-preemptions\"", aligner = "ALIGN_DELTA", reducer = "REDUCE_SUM", group = ["metric.label.zone"] },
    { title = "Start failures by reason", filter = "metric.type=\"${local.user_metric}-start-failures\"", aligner = "ALIGN_DELTA", reducer = "REDUCE_SUM", group = ["metric.label.pool", "metric.label.reason"] },
    { title = "Overflow warm (1 = billed while warm)", filter = "metric.type=\"${local.user_metric}-pool-overflow-warm\"", aligner = "ALIGN_PERCENTILE_50", reducer = "REDUCE_MAX", group = ["metric.label.pool"] },
    { title = "Idle VMs past their idle timeout", filter = "metric.type=\"${local.user_metric}-pool-idle-vms\"", aligner = "ALIGN_PERCENTILE_50", reducer = "REDUCE_MAX", group = ["metric.label.pool"] },
  ]

  dashboard = {
    displayName = "spotgate (${var.name})"
    mosaicLayout = {
      columns = 12
      tiles = [
        for i, chart in local.charts : {
          xPos   = (i % 2) * 6
          yPos   = floor(i / 2) * 4
          width  = 6
          height = 4
          widget = {
            title = chart.title
            xyChart = {
              dataSets = [{
                plotType = "LINE"
                timeSeriesQuery = {
                  timeSeriesFilter = {
                    filter = chart.filter
                    aggregation = {
                      alignmentPeriod    = "60s"
                      perSeriesAligner   = chart.aligner
                      crossSeriesReducer = chart.reducer
                      groupByFields      = chart.group
                    }
                  }
                }
              }]
            }
          }
        }
      ]
    }
  }
}

resource "google_monitoring_dashboard" "spotgate" {
  project        = var.project
  dashboard_json = jsonencode(local.dashboard)

  depends_on = [google_logging_metric.metric]
}

locals {
  function_requests = join(" AND ", [
    "metric.type=\"run.googleapis.com/request_count\"",
    "resource.type=\"cloud_run_revision\"",
    "resource.label.service_name=monitoring.regex.full_match(\"${join("|", var.function_services)}\")",
  ])

  # Every alert: one threshold condition; ratio conditions add a denominator.
  alerts = {
    no-ready-backend = {
      title       = "${var.name}: a pool has had no ready backend for ${var.no_ready_minutes} min"
      doc         = "A pool that should serve (min_ready >= 1, inside its active hours, not put to sleep) has had no ready VM and no warm overflow. Check `spotgate status` (recent actions, start failures by reason on the dashboard): SPOT stockouts in every zone, quota, or a failing boot."
      filter      = "metric.type=\"${local.user_metric}-pool-ready-backends\" AND resource.type=\"cloud_run_revision\" AND metric.label.expects_ready=\"true\""
      aligner     = "ALIGN_PERCENTILE_99"
      reducer     = "REDUCE_MAX"
      comparison  = "COMPARISON_LT"
      threshold   = 1
      duration    = var.no_ready_minutes * 60
      denominator = null
    }
    overflow-warm = {
      title       = "${var.name}: an overflow service has been warm for ${var.overflow_warm_hours} h"
      doc         = "The pool's Cloud Run GPU overflow has kept min instances 1 (billed every second) for hours: its VMs have not come back. Check start failures and preemptions on the dashboard, and `spotgate status`."
      filter      = "metric.type=\"${local.user_metric}-pool-overflow-warm\" AND resource.type=\"cloud_run_revision\""
      aligner     = "ALIGN_PERCENTILE_05"
      reducer     = "REDUCE_MIN"
      comparison  = "COMPARISON_GT"
      threshold   = 0
      duration    = var.overflow_warm_hours * 3600
      denominator = null
    }
    idle-vm = {
      title       = "${var.name}: a VM runs without traffic past its idle timeout"
      doc         = "VMs beyond the pool's min_ready have served nothing for longer than idle_timeout + drain_grace and were not stopped: the control plane's stops are failing (see `action failed` in the function logs) or it is not running."
      filter      = "metric.type=\"${local.user_metric}-pool-idle-vms\" AND resource.type=\"cloud_run_revision\""
      aligner     = "ALIGN_PERCENTILE_05"
      reducer     = "REDUCE_MAX"
      comparison  = "COMPARISON_GT"
      threshold   = 0
      duration    = var.idle_minutes * 60
      denominator = null
    }
    function-errors = {
      title       = "${var.name}: control-plane function error rate above ${var.function_error_ratio * 100}%"
      doc         = "More than the threshold of Eventarc deliveries to the control-plane functions failed (5xx; Pub/Sub retries them). Read the functions' logs for `retrying delivery` and tracebacks."
      filter      = "${local.function_requests} AND metric.label.response_code_class=\"5xx\""
      aligner     = "ALIGN_RATE"
      reducer     = "REDUCE_SUM"
      comparison  = "COMPARISON_GT"
      threshold   = var.function_error_ratio
      duration    = 600
      denominator = local.function_requests
    }
    gateway-5xx = {
      title       = "${var.name}: gateway 5xx rate above ${var.gateway_5xx_ratio * 100}%"
      doc         = "More than the threshold of the gateway's answers were 5xx (502 backend failure, 503 no backend, 504 timeout). The dashboard shows them by pool and backend kind; `spotgate status` shows the routes."
      filter      = "metric.type=\"${local.user_metric}-gateway-requests\" AND resource.type=\"cloud_run_revision\" AND metric.label.status=monitoring.regex.full_match(\"5[0-9][0-9]\")"
      aligner     = "ALIGN_RATE"
      reducer     = "REDUCE_SUM"
      comparison  = "COMPARISON_GT"
      threshold   = var.gateway_5xx_ratio
      duration    = 300
      denominator = "metric.type=\"${local.user_metric}-gateway-requests\" AND resource.type=\"cloud_run_revision\""
    }
  }
}

resource "google_monitoring_alert_policy" "alert" {
  for_each = local.alerts

  project               = var.project
  display_name          = each.value.title
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = merge(var.labels, { "spotgate-alert" = each.key })

  conditions {
    display_name = each.value.title

    condition_threshold {
      filter             = each.value.filter
      denominator_filter = each.value.denominator
      comparison         = each.value.comparison
      threshold_value    = each.value.threshold
      duration           = "${each.value.duration}s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = each.value.aligner
        cross_series_reducer = each.value.reducer
        group_by_fields      = each.value.denominator == null ? ["metric.label.pool"] : []
      }

      dynamic "denominator_aggregations" {
        for_each = each.value.denominator == null ? [] : [1]
        content {
          alignment_period     = "60s"
          per_series_aligner   = each.value.aligner
          cross_series_reducer = each.value.reducer
        }
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    content   = each.value.doc
    mime_type = "text/markdown"
  }

  alert_strategy {
    auto_close = "86400s"
  }

  depends_on = [google_logging_metric.metric]
}
