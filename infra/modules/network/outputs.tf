output "network_id" {
  description = "ID of the VPC (projects/P/global/networks/N)."
  value       = google_compute_network.vpc.id
}

output "network_name" {
  description = "Name of the VPC."
  value       = google_compute_network.vpc.name
}

output "subnetwork_id" {
  description = "ID of the private subnet the GPU VMs use."
  value       = google_compute_subnetwork.vms.id
}

output "subnetwork_ids" {
  description = "ID of the VM subnet per region: var.region and every region of vm_regions."
  value = merge(
    { (var.region) = google_compute_subnetwork.vms.id },
    { for region, subnet in google_compute_subnetwork.vms_elsewhere : region => subnet.id },
  )
}

output "connector_id" {
  description = "ID of the Serverless VPC Access connector (projects/P/locations/R/connectors/C)."
  value       = google_vpc_access_connector.serverless.id
}

output "direct_egress_subnetwork_id" {
  description = "ID of the gateway's Direct VPC egress subnet, or null when gateway_egress = \"connector\"."
  value       = one(google_compute_subnetwork.direct_egress[*].id)
}

output "gateway_egress_ranges" {
  description = "Source ranges allowed to reach the engine port (the serverless egress ranges)."
  value       = local.gateway_egress_ranges
}
