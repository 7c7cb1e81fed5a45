# The control plane: events in (log sink -> compute topic; Scheduler, agents, gateway -> control topic), two
# gen2 functions out. Terraform creates the functions with the source of the working tree; Cloud Build ships
# later code (`gcloud functions deploy`), so Terraform ignores the source after creation and never rolls it back.

locals {
  # The five Compute Engine system events that change whether a VM can serve (DESIGN §2.2). The log name
  # pins the system_event audit log so user-initiated stops (activity log) never look like preemptions.
  compute_methods = [
    "compute.instances.preempted",
    "compute.instances.hostError",
    "compute.instances.terminateOnHostMaintenance",
    "compute.instances.guestTerminate",
    "compute.instances.automaticRestart",
  ]
  sink_filter = join(" AND ", [
    "logName=\"projects/${var.project}/logs/cloudaudit.googleapis.com%2Fsystem_event\"",
    "resource.type=\"gce_instance\"",
    "protoPayload.methodName=(${join(" OR ", [for m in local.compute_methods : "\"${m}\""])})",
  ])

  topics = {
    compute = "${var.name}-compute"
    control = "${var.name}-control"
  }

  environment = merge(var.environment, {
    SPOTGATE_CONTROL_TOPIC         = local.topics.control
    SPOTGATE_COMPUTE_TOPIC         = local.topics.compute
    SPOTGATE_TASKS_QUEUE           = google_cloud_tasks_queue.wake.id
    SPOTGATE_TASKS_SERVICE_ACCOUNT = var.tasks_service_account
  })

  # One function per topic; both reconcile, they differ only in how they parse the delivery.
  functions = {
    compute = { name = "${var.name}-on-compute-event", entry_point = "on_compute_event", topic = "compute" }
    control = { name = "${var.name}-on-control", entry_point = "on_control", topic = "control" }
  }
}

resource "google_pubsub_topic" "topic" {
  #checkov:skip=CKV_GCP_83:Messages are VM names and timestamps, no customer data; Google-managed encryption suffices.
  for_each = local.topics

  project = var.project
  name    = each.value
  labels  = var.labels

  # Events older than this are useless to a level-triggered reconciler (the next tick repairs anything).
  message_retention_duration = "86400s"
}

resource "google_logging_project_sink" "compute_events" {
  project                = var.project
  name                   = "${var.name}-compute-events"
  description            = "Compute Engine system events on spotgate VMs -> ${local.topics.compute}."
  destination            = "pubsub.googleapis.com/${google_pubsub_topic.topic["compute"].id}"
  filter                 = local.sink_filter
  unique_writer_identity = true
}

resource "google_pubsub_topic_iam_member" "sink_publisher" {
  project = var.project
  topic   = google_pubsub_topic.topic["compute"].name
  role    = "roles/pubsub.publisher"
  member  = google_logging_project_sink.compute_events.writer_identity
}

resource "google_pubsub_topic_iam_member" "control_publisher" {
  for_each = var.control_publishers

  project = var.project
  topic   = google_pubsub_topic.topic["control"].name
  role    = "roles/pubsub.publisher"
  member  = each.value
}

resource "google_cloud_scheduler_job" "tick" {
  project     = var.project
  region      = var.region
  name        = "${var.name}-tick"
  description = "Reconcile every pool; repairs any missed or duplicated event."
  schedule    = var.tick_schedule
  time_zone   = "Etc/UTC"

  pubsub_target {
    topic_name = google_pubsub_topic.topic["control"].id
    data       = base64encode(jsonencode({ v = 1, kind = "tick" }))
  }
}

# Per-pool overrides without an `until`: a sleep holds the pool at zero ready VMs until the next wake (a
# request through the gateway, or a scheduled wake); a wake is the same signal as a waiting request.
resource "google_cloud_scheduler_job" "scheduled" {
  for_each = var.scheduled_jobs

  project     = var.project
  region      = var.region
  name        = "${var.name}-${each.key}"
  description = "${title(each.value.kind)} pool ${each.value.pool}."
  schedule    = each.value.schedule
  time_zone   = each.value.time_zone

  pubsub_target {
    topic_name = google_pubsub_topic.topic["control"].id
    data       = base64encode(jsonencode({ v = 1, kind = each.value.kind, pool = each.value.pool }))
  }
}

# The planner's timers (a boot to check, a cooldown ending, an idle timeout) become delayed tasks here, so
# a reaction does not wait for the next minute tick. Each task, when due, calls Pub/Sub's REST publish on the
# control topic as `tasks_service_account` (which may publish there and nowhere else). Task names are derived
# from pool and due time, so a burst of reconciles schedules one wake-up (the queue refuses a reused name).
resource "google_cloud_tasks_queue" "wake" {
  project  = var.project
  location = var.region
  name     = "${var.name}-wake"

  rate_limits {
    max_dispatches_per_second = 10
  }

  # A wake-up that cannot be published within a minute is left to the minute tick.
  retry_config {
    max_attempts       = 5
    max_retry_duration = "60s"
    min_backoff        = "1s"
    max_backoff        = "10s"
  }
}

# The controller may add tasks to this queue and no other.
resource "google_cloud_tasks_queue_iam_member" "controller_enqueuer" {
  project  = var.project
  location = google_cloud_tasks_queue.wake.location
  name     = google_cloud_tasks_queue.wake.name
  role     = "roles/cloudtasks.enqueuer"
  member   = "serviceAccount:${var.runtime_service_account}"
}

data "archive_file" "functions" {
  type        = "zip"
  source_dir  = var.source_dir
  output_path = "${path.root}/.build/functions-source.zip"
  # Mirrors functions/.gcloudignore: the sandbox is never deployed, nor tests and caches.
  excludes = [
    ".gcloudignore",
    "spotgate/sandbox/**",
    "**/__pycache__/**",
    "**/*.pyc",
    "**/.mypy_cache/**",
    "**/.pytest_cache/**",
    "**/.ruff_cache/**",
    "tests/**",
  ]
}

resource "google_storage_bucket_object" "functions" {
  # The content hash in the name makes every change a new object, so Cloud Functions sees a new source.
  name   = "functions/${data.archive_file.functions.output_sha256}.zip"
  bucket = var.source_bucket
  source = data.archive_file.functions.output_path

  lifecycle {
    precondition {
      condition     = fileexists("${var.source_dir}/main.py") && fileexists("${var.source_dir}/requirements.txt")
      error_message = "functions/ needs main.py and requirements.txt: run `make requirements` before terraform apply."
    }
  }
}

resource "google_cloudfunctions2_function" "function" {
  for_each = local.functions

  project     = var.project
  location    = var.region
  name        = each.value.name
  description = "spotgate ${each.value.entry_point}: parse, reconcile, apply."
  labels      = var.labels

  build_config {
    runtime         = "python312"
    entry_point     = each.value.entry_point
    service_account = var.build_service_account

    source {
      storage_source {
        bucket = var.source_bucket
        object = google_storage_bucket_object.functions.name
      }
    }
  }

  service_config {
    available_memory   = var.function_memory
    available_cpu      = "1"
    timeout_seconds    = 300
    min_instance_count = 0
    max_instance_count = var.function_max_instances
    # One delivery per instance: a reconcile holds a per-pool lease and waits on Compute operations.
    max_instance_request_concurrency = 1
    environment_variables            = local.environment
    service_account_email            = var.runtime_service_account
    vpc_connector                    = var.vpc_connector
    vpc_connector_egress_settings    = "PRIVATE_RANGES_ONLY"
    # Eventarc Pub/Sub pushes count as internal traffic, so nothing outside the project can call the functions.
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
  }

  event_trigger {
    trigger_region        = var.region
    event_type            = "google.cloud.pubsub.topic.v1.messagePublished"
    pubsub_topic          = google_pubsub_topic.topic[each.value.topic].id
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = var.trigger_service_account
  }

  lifecycle {
    ignore_changes = [build_config[0].source]
  }
}

# Eventarc pushes with the trigger account's identity; it may invoke these two services and nothing else.
resource "google_cloud_run_v2_service_iam_member" "trigger_invoker" {
  for_each = google_cloudfunctions2_function.function

  project  = var.project
  location = var.region
  # The function's underlying Cloud Run service (today named like the function, but that is not a contract).
  name   = each.value.service_config[0].service
  role   = "roles/run.invoker"
  member = "serviceAccount:${var.trigger_service_account}"
}
