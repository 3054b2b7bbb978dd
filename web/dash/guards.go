package dash

import (
	"fmt"

	"hearth/web/eh"
)

// nicModelNote is why the forms show a container's NIC model greyed
// instead of offering it: a system container's interfaces are veth pairs
// whatever nic:N:model says. The API still records the key, as
// ElasticHosts clients send it; the dashboard keeps what is recorded. A VM
// (type vm) gets the card the model names, and its forms offer the models.
const nicModelNote = "Containers always get a virtio-style interface; models apply to VMs."

// tcgNote says, next to the type, that VMs here run under QEMU's software
// emulation (the backend found no usable /dev/kvm).
const tcgNote = "VMs run in software emulation here: slower than with KVM."

// nicModels are the NIC models a VM's form offers (those qemu.Command
// knows), with what each suits.
var nicModels = []option{
	{Value: "virtio", Label: "virtio (fastest; Linux, BSD, Windows with drivers)"},
	{Value: "e1000", Label: "e1000 (Intel; any OS, installers)"},
	{Value: "rtl8139", Label: "rtl8139 (Realtek; old systems)"},
}

// typeLabel is how pages name a server's type key.
func typeLabel(typ string) string {
	if typ == eh.TypeVM {
		return "VM"
	}
	return "Container"
}

// checkNetwork refuses, next to its field, a NIC a Hearth without a guest
// network (noNetwork says why) could not give the server: its start would
// fail with the server left dead. public and vlan: the form adds that NIC.
func checkNetwork(errs formErrors, noNetwork string, public, vlan bool) {
	if noNetwork == "" {
		return
	}
	msg := fmt.Sprintf("%s Choose No network.", noNetwork)
	if public {
		errs["nic0"] = msg
	}
	if vlan {
		errs["vlan"] = fmt.Sprintf("%s Choose None.", noNetwork)
	}
}
