// Package deploy holds what the appliance image installs besides the hearth
// binary — the systemd units, the first-boot script that puts the admin
// credentials on the console login banner, the readiness probe, Kata's
// drop-in that lets Hearth size guest VMs (kata-hearth.toml, from
// vmm/kata.DropIn), containerd's configuration, and the provisioning script
// of appliance.pkr.hcl — and the tests that run them here the way the
// appliance would.
package deploy
