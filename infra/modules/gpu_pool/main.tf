# The GPU VMs of one pool. Terraform creates them and the control plane starts and stops them, so:
#  - VMs end up stopped (desired_status = TERMINATED), but Compute Engine cannot create a stopped VM: the
#    provider inserts each one RUNNING and then stops it (resource_compute_instance.go). That first boot bills
#    a minute or two of GPU time and needs GPU capacity and quota for every VM at once (docs/deploy.md sizes
#    quota for it); the agent recognises it (the instance has never been stopped) and exits at once. After
#    that Terraform ignores desired_status forever (the control plane owns what runs);
#  - allow_stopping_for_update = false: a change that needs a stopped VM (machine type, GPU, service account)
#    fails the plan instead of Terraform stopping a serving VM; drain it first (docs/deploy.md, "Day two");
#  - SPOT and STANDARD VMs are separate resources so each scheduling block is literal and checkable offline.

locals {
  spot_vms     = { for vm in var.vms : vm.name => vm if vm.provisioning_model == "SPOT" }
  standard_vms = { for vm in var.vms : vm.name => vm if vm.provisioning_model == "STANDARD" }

  # A pool may span regions: each VM joins its own region's subnet (var.subnetwork in the home region).
  subnetwork = { for vm in var.vms : vm.name => lookup(var.subnetworks, regex("^(.+)-[a-z]$", vm.zone)[0], var.subnetwork) }

  # The control plane lists VMs by this label; the provisioning label is for humans and billing reports.
  labels = merge(var.labels, { "spotgate-pool" = var.pool, "managed-by" = "spotgate" })
}

resource "google_compute_instance" "spot" {
  #checkov:skip=CKV_GCP_38:CSEK would require the raw key on every start; the control plane starts VMs unattended. Google-managed encryption applies.
  for_each = local.spot_vms

  project      = var.project
  name         = each.key
  zone         = each.value.zone
  machine_type = var.machine_type
  labels       = merge(local.labels, { "spotgate-provisioning" = "spot" })
  # OS Login (IAM-controlled SSH through IAP) instead of metadata SSH keys. The agent scripts and their
  # settings travel as metadata, so a changed script needs a restart, not a new VM.
  metadata = {
    startup-script          = var.startup_script
    shutdown-script         = var.shutdown_script
    enable-oslogin          = "TRUE"
    block-project-ssh-keys  = true
    install-nvidia-driver   = "True"
    spotgate-project        = var.agent.project
    spotgate-control-topic  = var.agent.control_topic
    spotgate-pool           = var.pool
    spotgate-port           = tostring(var.agent.port)
    spotgate-health-path    = var.agent.health_path
    spotgate-engine-image   = var.agent.engine_image
    spotgate-engine-args    = join("\n", var.agent.engine_args)
    spotgate-models-bucket  = var.agent.models_bucket
    spotgate-model-path     = var.agent.model_path
    spotgate-drain-seconds  = tostring(var.agent.drain_seconds)
    spotgate-notice-seconds = tostring(var.agent.notice_seconds)
  }

  desired_status            = "TERMINATED"
  allow_stopping_for_update = false

  boot_disk {
    auto_delete = true
    initialize_params {
      image = var.boot_image
      size  = var.disk_size_gb
      type  = var.disk_type
    }
  }

  guest_accelerator {
    type  = var.gpu_type
    count = var.gpu_count
  }

  scheduling {
    provisioning_model          = "SPOT"
    preemptible                 = true
    automatic_restart           = false
    on_host_maintenance         = "TERMINATE"
    instance_termination_action = "STOP"
  }

  network_interface {
    subnetwork = local.subnetwork[each.key]
  }

  service_account {
    email  = var.service_account
    scopes = ["cloud-platform"]
  }

  # Secure Boot stays off: the Deep Learning VM installs the NVIDIA driver at first boot as an unsigned kernel
  # module, which Secure Boot refuses to load. vTPM and integrity monitoring stay on.
  shielded_instance_config {
    enable_secure_boot          = false
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  lifecycle {
    ignore_changes = [desired_status]
  }
}

resource "google_compute_instance" "standard" {
  #checkov:skip=CKV_GCP_38:CSEK would require the raw key on every start; the control plane starts VMs unattended. Google-managed encryption applies.
  for_each = local.standard_vms

  project      = var.project
  name         = each.key
  zone         = each.value.zone
  machine_type = var.machine_type
  labels       = merge(local.labels, { "spotgate-provisioning" = "standard" })
  # OS Login (IAM-controlled SSH through IAP) instead of metadata SSH keys. The agent scripts and their
  # settings travel as metadata, so a changed script needs a restart, not a new VM.
  metadata = {
    startup-script          = var.startup_script
    shutdown-script         = var.shutdown_script
    enable-oslogin          = "TRUE"
    block-project-ssh-keys  = true
    install-nvidia-driver   = "True"
    spotgate-project        = var.agent.project
    spotgate-control-topic  = var.agent.control_topic
    spotgate-pool           = var.pool
    spotgate-port           = tostring(var.agent.port)
    spotgate-health-path    = var.agent.health_path
    spotgate-engine-image   = var.agent.engine_image
    spotgate-engine-args    = join("\n", var.agent.engine_args)
    spotgate-models-bucket  = var.agent.models_bucket
    spotgate-model-path     = var.agent.model_path
    spotgate-drain-seconds  = tostring(var.agent.drain_seconds)
    spotgate-notice-seconds = tostring(var.agent.notice_seconds)
  }

  desired_status            = "TERMINATED"
  allow_stopping_for_update = false

  boot_disk {
    auto_delete = true
    initialize_params {
      image = var.boot_image
      size  = var.disk_size_gb
      type  = var.disk_type
    }
  }

  guest_accelerator {
    type  = var.gpu_type
    count = var.gpu_count
  }

  # The on-demand fallback: GPUs cannot live-migrate, so host maintenance terminates it; a host error
  # restarts it in place (automaticRestart is one of the sink's five methods, so the control plane hears it).
  scheduling {
    provisioning_model  = "STANDARD"
    preemptible         = false
    automatic_restart   = true
    on_host_maintenance = "TERMINATE"
  }

  network_interface {
    subnetwork = local.subnetwork[each.key]
  }

  service_account {
    email  = var.service_account
    scopes = ["cloud-platform"]
  }

  # Secure Boot stays off: the Deep Learning VM installs the NVIDIA driver at first boot as an unsigned kernel
  # module, which Secure Boot refuses to load. vTPM and integrity monitoring stay on.
  shielded_instance_config {
    enable_secure_boot          = false
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  lifecycle {
    ignore_changes = [desired_status]
  }
}

# The control plane may get/setScheduling/start/stop exactly these VMs (a custom role granted per instance), not the project's.
resource "google_compute_instance_iam_member" "controller" {
  for_each = merge(google_compute_instance.spot, google_compute_instance.standard)

  project       = var.project
  zone          = each.value.zone
  instance_name = each.value.name
  role          = var.instance_role
  member        = var.controller
}
