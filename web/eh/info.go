package eh

// publicCounters maps the EH-1 and seed counter keys to NIC 0's counters:
// the reference has rx/tx as "bytes on NIC 0", and the seed's
// [rx|tx]:[bytes|packets] are the same counters under their full names.
// NIC 1 (the VLAN) shows only under its own nic:1:* keys.
var publicCounters = []struct{ key, from string }{
	{"rx:bytes", "nic:0:rx:bytes"}, {"rx", "nic:0:rx:bytes"},
	{"tx:bytes", "nic:0:tx:bytes"}, {"tx", "nic:0:tx:bytes"},
	{"rx:packets", "nic:0:rx:packets"}, {"tx:packets", "nic:0:tx:packets"},
}

// ServerInfo returns what server info shows, for clients of both dialects.
//
// stored is the server's stored properties (its configuration as NewServer and
// UpdateServer return it, plus server, user, status, error ...). runtime is nil
// unless the guest is running; then it holds the guest layer's runtime keys:
// started, smp:cores, vnc:ip (where VNC listens), vnc:port, nic:N:ip,
// nic:N:mac, nic:N:{rx,tx}:{bytes,packets}, DEVICE:{read,write}:{bytes,requests}.
// Runtime keys never replace stored ones.
//
// Added aliases: vnc:password beside password; vnc:ip beside vnc (the runtime
// address while running, else the configured address or auto); nic:0:dhcp:ip
// beside nic:0:ip; the seed's rx:bytes, tx:bytes, rx:packets, tx:packets and
// the EH-1 rx and tx from NIC 0's counters; smp:cores from a numeric smp when
// the runtime does not say. Neither argument is modified.
func ServerInfo(stored, runtime Props) Props {
	out := make(Props, len(stored)+len(runtime)+12)
	for k, v := range stored {
		out[k] = v
	}
	if out["type"] == "" { // stored before Hearth had the key
		out["type"] = TypeContainer
	}
	if pw := stored["password"]; pw != "" {
		out["vnc:password"] = pw
	}
	if vnc := stored["vnc"]; vnc != "" {
		switch {
		case runtime["vnc:ip"] != "":
			out["vnc:ip"] = runtime["vnc:ip"]
		default:
			out["vnc:ip"] = vnc
		}
	}
	if runtime == nil {
		return out
	}
	for k, v := range runtime {
		if _, ok := out[k]; !ok && v != "" {
			out[k] = v
		}
	}
	if ip := runtime["nic:0:ip"]; ip != "" {
		out["nic:0:dhcp:ip"] = ip
	}
	for _, c := range publicCounters {
		if v := runtime[c.from]; v != "" {
			out[c.key] = v
		}
	}
	if out["smp:cores"] == "" && isDecimal(stored["smp"]) {
		out["smp:cores"] = stored["smp"]
	}
	return out
}
