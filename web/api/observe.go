package api

import (
	"fmt"
	"strconv"

	"hearth/vmm"
	"hearth/web/eh"
)

// runtimeKeys renders what the guest layer observed of a running server as
// its ElasticHosts runtime keys: smp:cores, nic:N:mac, nic:N:ip and NIC
// counters, DEVICE:read/write:bytes/requests, cpu:usage (ns) and mem:usage
// (bytes), vnc:ip and vnc:port.
func runtimeKeys(o vmm.Observation) eh.Props {
	p := eh.Props{"smp:cores": strconv.Itoa(o.SMP)}
	u := func(n uint64) string { return strconv.FormatUint(n, 10) }
	for _, n := range o.NICs {
		prefix := fmt.Sprintf("nic:%d:", n.Index)
		p[prefix+"mac"] = n.MAC
		if n.IP.IsValid() {
			p[prefix+"ip"] = n.IP.String()
		}
		if c := n.Counters; c != nil {
			p[prefix+"rx:bytes"] = u(c.RxBytes)
			p[prefix+"rx:packets"] = u(c.RxPackets)
			p[prefix+"tx:bytes"] = u(c.TxBytes)
			p[prefix+"tx:packets"] = u(c.TxPackets)
		}
	}
	for dev, d := range o.Disks {
		p[dev+":read:bytes"] = u(d.ReadBytes)
		p[dev+":read:requests"] = u(d.ReadRequests)
		p[dev+":write:bytes"] = u(d.WriteBytes)
		p[dev+":write:requests"] = u(d.WriteRequests)
	}
	if o.Usage != nil {
		p["cpu:usage"] = u(o.Usage.CPUNanos)
		p["mem:usage"] = u(o.Usage.MemoryBytes)
	}
	if o.VNC != nil {
		p["vnc:ip"] = o.VNC.IP
		if o.VNC.Port != 0 {
			p["vnc:port"] = strconv.Itoa(o.VNC.Port)
		}
	}
	return p
}
