# The same pools as examples/fleet.yaml (tests/infra proves it), plus what only Terraform needs:
# `serving` (engine image and weights path), `host` (VM shape) and the overflow's Cloud Run GPU settings.
# Copy to infra/terraform.tfvars and change project (and the models you serve).
project = "my-spotgate-project"
region  = "us-central1"

prices = {
  spot_per_hour     = 0.28
  standard_per_hour = 0.71
  overflow_per_hour = 0.80
}

gateway_allowed_principals = ["@example.com"]

pools = [
  {
    name    = "chat"
    model   = "llama-3.1-8b-instruct"
    aliases = ["llama3", "gpt-4o-mini"]
    spot = {
      zones    = ["us-central1-a", "us-central1-b", "us-central1-c"]
      per_zone = 1
    }
    vms = [
      { name = "chat-standard", zone = "us-central1-a", provisioning_model = "STANDARD" },
    ]
    engine            = { port = 8000, health_path = "/health" }
    min_ready         = 1
    max_ready         = 2
    target_inflight   = 8
    idle_timeout      = "15m"
    drain_grace       = "30s"
    wake_hold         = "30s"
    stockout_cooldown = "5m"
    fallback          = { enabled = true, after = "2m" }
    overflow = {
      service       = "chat-overflow"
      cooldown      = "5m"
      max_instances = 2
    }
    serving = {
      image      = "vllm/vllm-openai:v0.8.5"
      model_path = "llama-3.1-8b-instruct/2024-07-23"
      args       = ["--max-model-len", "8192", "--gpu-memory-utilization", "0.92"]
    }
    host = { machine_type = "g2-standard-8", disk_size_gb = 200 }
    # Nights off: at 22:00 the pool sleeps (zero ready VMs) until the first request or the weekday wake.
    schedule = { sleep = ["0 22 * * *"], wake = ["30 7 * * 1-5"], time_zone = "America/Chicago" }
  },
  {
    name   = "embed"
    model  = "bge-small-en"
    spot   = { zones = ["us-central1-b"] }
    engine = { port = 8001, health_path = "/health" }

    min_ready    = 0
    max_ready    = 1
    idle_timeout = "10m"
    wake_hold    = "45s"
    active_hours = {
      timezone = "Europe/Berlin"
      windows = [
        { days = ["mon", "tue", "wed", "thu", "fri"], start = "07:00", end = "21:00" },
      ]
    }
    serving = {
      image      = "vllm/vllm-openai:v0.8.5"
      model_path = "bge-small-en/v1.5"
      args       = ["--task", "embed"]
    }
    host = { machine_type = "g2-standard-4", disk_size_gb = 100 }
    # Wake at the start of the window (min_ready is 0, so otherwise the first request of the day waits for a boot).
    schedule = { wake = ["0 7 * * 1-5"], time_zone = "Europe/Berlin" }
  },
]

# Who the alert policies notify (docs/deploy.md step 10), and their thresholds:
# alerts = {
#   notification_channels = ["projects/my-spotgate-project/notificationChannels/1234567890"]
# }
