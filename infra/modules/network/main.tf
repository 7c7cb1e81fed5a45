# The private network of the GPU VMs: no public IPs anywhere, egress through Cloud NAT, Google APIs through
# Private Google Access, and ingress only from IAP (operators) and from the serverless egress range (the
# gateway, and the functions' health probes).

locals {
  # IAP TCP forwarding connects from this fixed Google range; it is the only way an operator reaches a VM.
  iap_range = "35.235.240.0/20"

  # The functions always egress through the connector (gen2 functions have no Direct VPC egress); the gateway
  # uses either the connector or its own Direct VPC egress subnet. The engine port opens to exactly these.
  gateway_egress_ranges = var.gateway_egress == "direct" ? [var.connector_cidr, var.direct_egress_cidr] : [var.connector_cidr]

  # Firewall rules take port strings; one rule covers every pool's engine port.
  engine_ports = [for p in distinct(var.engine_ports) : tostring(p)]
}

resource "google_compute_network" "vpc" {
  project                 = var.project
  name                    = "${var.name}-vpc"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"
}

resource "google_compute_subnetwork" "vms" {
  project                  = var.project
  name                     = "${var.name}-vms"
  region                   = var.region
  network                  = google_compute_network.vpc.id
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# A pool that spans regions gets a VM subnet, a router and a NAT in each further region: subnets and Cloud
# NAT are regional, the VPC is global (its routes carry the gateway's traffic to any region's private IPs).
resource "google_compute_subnetwork" "vms_elsewhere" {
  for_each = var.vm_regions

  project                  = var.project
  name                     = "${var.name}-vms-${each.key}"
  region                   = each.key
  network                  = google_compute_network.vpc.id
  ip_cidr_range            = each.value
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_router" "elsewhere" {
  for_each = var.vm_regions

  project = var.project
  name    = "${var.name}-router-${each.key}"
  region  = each.key
  network = google_compute_network.vpc.id
}

resource "google_compute_router_nat" "elsewhere" {
  for_each = var.vm_regions

  project                            = var.project
  name                               = "${var.name}-nat-${each.key}"
  region                             = each.key
  router                             = google_compute_router.elsewhere[each.key].name
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"

  subnetwork {
    name                    = google_compute_subnetwork.vms_elsewhere[each.key].id
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

resource "google_compute_subnetwork" "direct_egress" {
  count = var.gateway_egress == "direct" ? 1 : 0

  project                  = var.project
  name                     = "${var.name}-run-egress"
  region                   = var.region
  network                  = google_compute_network.vpc.id
  ip_cidr_range            = var.direct_egress_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_vpc_access_connector" "serverless" {
  project       = var.project
  name          = "${var.name}-conn"
  region        = var.region
  network       = google_compute_network.vpc.name
  ip_cidr_range = var.connector_cidr
  machine_type  = "e2-micro"
  min_instances = 2
  max_instances = 3
}

resource "google_compute_router" "router" {
  project = var.project
  name    = "${var.name}-router"
  region  = var.region
  network = google_compute_network.vpc.id
}

resource "google_compute_router_nat" "nat" {
  project                            = var.project
  name                               = "${var.name}-nat"
  region                             = var.region
  router                             = google_compute_router.router.name
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"

  subnetwork {
    name                    = google_compute_subnetwork.vms.id
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

resource "google_compute_firewall" "iap" {
  project     = var.project
  name        = "${var.name}-allow-iap"
  network     = google_compute_network.vpc.id
  description = "SSH and the engine port through IAP TCP forwarding only (gcloud compute ssh --tunnel-through-iap)."
  direction   = "INGRESS"
  priority    = 1000

  source_ranges           = [local.iap_range]
  target_service_accounts = var.vm_service_accounts

  allow {
    protocol = "tcp"
    ports    = concat(["22"], local.engine_ports)
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_firewall" "engine" {
  project     = var.project
  name        = "${var.name}-allow-engine"
  network     = google_compute_network.vpc.id
  description = "The inference engine port from the serverless egress range (gateway and control-plane probes) only."
  direction   = "INGRESS"
  priority    = 1000

  source_ranges           = local.gateway_egress_ranges
  target_service_accounts = var.vm_service_accounts

  allow {
    protocol = "tcp"
    ports    = local.engine_ports
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
