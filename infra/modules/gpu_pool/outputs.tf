output "instances" {
  description = "Every VM of the pool: name => {zone, provisioning_model, internal_ip, self_link}."
  value = {
    for name, vm in merge(google_compute_instance.spot, google_compute_instance.standard) : name => {
      zone               = vm.zone
      provisioning_model = vm.scheduling[0].provisioning_model
      internal_ip        = vm.network_interface[0].network_ip
      self_link          = vm.self_link
    }
  }
}

output "zones" {
  description = "Distinct zones the pool's VMs are in."
  value       = distinct([for vm in var.vms : vm.zone])
}
