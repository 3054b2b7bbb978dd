// Package deploy holds what the appliance image installs besides the hearth
// binary — the systemd units, the first-boot script that puts the admin
// credentials on the console login banner, the readiness probe, and the
// provisioning script of appliance.pkr.hcl — and the test that runs them
// here the way the appliance would.
package deploy
