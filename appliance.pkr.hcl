# Hearth appliance image: a Debian 12 disk with Hearth, containerd, runc,
# e2fsprogs and Kata Containers, booting into `hearth serve` on HTTPS (:443)
# with the admin credentials on the console login banner.
#
# Build with `./task image` (builds bin/hearth first) on a machine with KVM
# and network; pass variables after --, e.g.
#   ./task image -- -var kata_sha256=SHA256 -var format=raw
# Newer Packer needs the qemu plugin: `./task image` runs
# `packer init plugins.pkr.hcl` first (Packer 1.6 has it built in).

variable "debian_image_url" {
  type        = string
  description = "Debian 12 cloud image to start from (URL or local path). The generic image carries the drivers of physical hosts; genericcloud is smaller and enough for VMs."
  default     = "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-generic-amd64.qcow2"
}

variable "debian_image_checksum" {
  type        = string
  description = "Checksum of the Debian image: TYPE:VALUE, or file:URL of a checksum list."
  default     = "file:https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS"
}

variable "kata_version" {
  type        = string
  description = "Kata Containers release to install (its static tarball unpacks into /opt/kata; provision.sh adds Hearth's config.d drop-in, read by Kata's Go runtime since 3.0)."
  default     = "3.20.0"
}

variable "kata_url" {
  type        = string
  description = "URL of the Kata static release tarball; empty means the official one of kata_version (releases from 4.0 are .tar.zst: set this URL for them)."
  default     = ""
}

variable "kata_sha256" {
  type        = string
  description = "SHA-256 of the Kata tarball, 64 hex digits (required: the build stops without it)."
  default     = ""
  # Packer 1.6 has no regex in validations; provision.sh checks the digits.
  validation {
    condition     = length(var.kata_sha256) == 64
    error_message = "The kata_sha256 variable must be the 64-hex-digit SHA-256 of the Kata release tarball (see the README's appliance section)."
  }
}

variable "hearth_binary" {
  type        = string
  description = "The hearth binary to install, as built by `./task build`."
  default     = "bin/hearth"
}

variable "disk_size" {
  type        = string
  description = "Size of the appliance disk; guests' drives live on it (/var/lib/hearth)."
  default     = "20G"
}

variable "format" {
  type        = string
  description = "Output disk format: qcow2 or raw (raw can be written to a physical disk with dd)."
  default     = "qcow2"
  validation {
    condition     = contains(["qcow2", "raw"], var.format)
    error_message = "The format variable must be qcow2 or raw."
  }
}

variable "hostname" {
  type        = string
  description = "Host name of the appliance; it is also in the self-signed certificate."
  default     = "hearth"
}

variable "accelerator" {
  type        = string
  description = "QEMU accelerator of the build VM: kvm, or tcg where there is no usable KVM (several times slower)."
  default     = "kvm"
}

variable "output_directory" {
  type        = string
  description = "Where the image is written (must not exist yet)."
  default     = "bin/appliance"
}

locals {
  kata_url = var.kata_url != "" ? var.kata_url : "https://github.com/kata-containers/kata-containers/releases/download/${var.kata_version}/kata-static-${var.kata_version}-amd64.tar.xz"
  # The throw-away account of deploy/cloud-init/user-data, deleted before the
  # image is sealed.
  build_user     = "hearth-build"
  build_password = "hearth-build"
}

source "qemu" "debian" {
  iso_url        = var.debian_image_url
  iso_checksum   = var.debian_image_checksum
  disk_image     = true
  disk_size      = var.disk_size
  format         = var.format
  headless       = true
  accelerator    = var.accelerator
  cpus           = 2
  memory         = 2048
  net_device     = "virtio-net"
  disk_interface = "virtio"
  boot_wait      = "5s"

  # cloud-init's NoCloud seed comes from Packer's HTTP server.
  http_directory = "deploy/cloud-init"
  qemuargs = [
    ["-smbios", "type=1,serial=ds=nocloud-net;s=http://{{ .HTTPIP }}:{{ .HTTPPort }}/"],
  ]

  communicator = "ssh"
  ssh_username = local.build_user
  ssh_password = local.build_password
  ssh_timeout  = "15m"
  # Seal the image: drop the build account and cloud-init's state, so the
  # appliance's first boot is a first boot (new machine id, SSH host keys).
  shutdown_command = "sudo sh -c 'userdel --force --remove ${local.build_user}; rm -f /etc/sudoers.d/90-cloud-init-users; cloud-init clean --logs --seed; truncate -s 0 /etc/machine-id; shutdown -P now'"

  output_directory = var.output_directory
  vm_name          = "${var.hostname}.${var.format}"
}

build {
  sources = ["source.qemu.debian"]

  # Without a trailing slash the directory itself is uploaded: /tmp/deploy.
  provisioner "file" {
    source      = "deploy"
    destination = "/tmp"
  }

  provisioner "file" {
    source      = var.hearth_binary
    destination = "/tmp/hearth"
  }

  provisioner "shell" {
    script          = "deploy/provision.sh"
    execute_command = "sudo env {{ .Vars }} sh -eu '{{ .Path }}'"
    environment_vars = [
      "DEPLOY=/tmp/deploy",
      "HEARTH_BINARY=/tmp/hearth",
      "KATA_URL=${local.kata_url}",
      "KATA_SHA256=${var.kata_sha256}",
      "APPLIANCE_HOSTNAME=${var.hostname}",
    ]
  }
}
