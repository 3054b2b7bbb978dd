# Plugins for Packer 1.7 and newer, which no longer carry the qemu builder.
# Kept apart from appliance.pkr.hcl because Debian's Packer 1.6 rejects this
# block; `./task image` runs `packer init plugins.pkr.hcl` on newer Packer.
packer {
  required_version = ">= 1.6.6"
  required_plugins {
    qemu = {
      source  = "github.com/hashicorp/qemu"
      version = ">= 1.1.0"
    }
  }
}
