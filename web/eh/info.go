package eh

import "strconv"

// seedCounterKeys are the seed's NIC counters, summed over nicCounterKeys.
var (
	seedCounterKeys = [4]string{"rx:bytes", "tx:bytes", "rx:packets", "tx:packets"}
	nicCounterKeys  = [2][4]string{
		{"nic:0:rx:bytes", "nic:0:tx:bytes", "nic:0:rx:packets", "nic:0:tx:packets"},
		{"nic:1:rx:bytes", "nic:1:tx:bytes", "nic:1:rx:packets", "nic:1:tx:packets"},
	}
)

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
// beside nic:0:ip; the seed's rx:bytes, tx:bytes, rx:packets, tx:packets
// summed over the NICs, with the EH-1 rx and tx; smp:cores from a numeric smp
// when the runtime does not say. Neither argument is modified.
func ServerInfo(stored, runtime Props) Props {
	out := make(Props, len(stored)+len(runtime)+12)
	for k, v := range stored {
		out[k] = v
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
	var sums [4]uint64
	var seen bool
	for _, nic := range nicCounterKeys {
		for i, key := range nic {
			v, ok := runtime[key]
			if !ok {
				continue
			}
			if u, err := strconv.ParseUint(v, 10, 64); err == nil {
				sums[i] += u
				seen = true
			}
		}
	}
	if seen {
		for i, c := range seedCounterKeys {
			out[c] = strconv.FormatUint(sums[i], 10)
		}
		out["rx"], out["tx"] = out["rx:bytes"], out["tx:bytes"]
	}
	if out["smp:cores"] == "" && isDecimal(stored["smp"]) {
		out["smp:cores"] = stored["smp"]
	}
	return out
}
