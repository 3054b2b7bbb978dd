package dash

import "fmt"

// nicModelNote is why the forms show the NIC model greyed instead of
// offering it: every guest is a system container today (full VMs,
// appliance spec §5, are not built yet), whose interfaces are veth pairs
// whatever nic:N:model says. The API still records the key, as
// ElasticHosts clients send it; the dashboard keeps what is recorded.
const nicModelNote = "Containers always get a virtio-style interface; models apply to VMs."

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
