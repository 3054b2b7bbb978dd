package dash

// nicModelNote is why the forms show the NIC model greyed instead of
// offering it: every guest is a system container today (full VMs,
// appliance spec §5, are not built yet), whose interfaces are veth pairs
// whatever nic:N:model says. The API still records the key, as
// ElasticHosts clients send it; the dashboard keeps what is recorded.
const nicModelNote = "Containers always get a virtio-style interface; models apply to VMs."
