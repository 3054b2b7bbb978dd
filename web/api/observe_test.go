package api

import (
	"net/netip"
	"testing"

	"hearth/console"
	"hearth/vmm"
	"hearth/vmm/guest"
	"hearth/web/eh"
)

// Every runtime key a running server's info shows is an output key, which
// a client cannot set and the dashboard does not offer as configuration
// (the NICs' MACs excepted: they are configuration keys as well).
func TestRuntimeKeysAreOutputKeys(t *testing.T) {
	o := vmm.Observation{
		SMP: 2,
		NICs: []vmm.NICState{
			{Index: 0, MAC: "02:00:00:00:00:01", IP: netip.MustParseAddr("10.1.0.2"), Counters: &guest.NICCounters{RxBytes: 1}},
			{Index: 1, MAC: "02:00:00:00:00:02", Counters: &guest.NICCounters{TxBytes: 1}},
		},
		Disks: map[string]guest.DiskCounters{"ide:0:0": {ReadBytes: 1}, "hdb": {WriteBytes: 1}},
		Usage: &guest.Usage{CPUNanos: 1, MemoryBytes: 1},
		VNC:   &console.Endpoint{IP: "127.0.0.1", Port: 5900},
	}
	keys := runtimeKeys(o)
	for _, k := range []string{"cpu:usage", "mem:usage", "hdb:write:bytes", "vnc:port"} {
		if keys[k] == "" {
			t.Fatalf("runtimeKeys has no %s: %v", k, keys)
		}
	}
	for k := range keys {
		if k == "nic:0:mac" || k == "nic:1:mac" {
			continue
		}
		if !eh.ServerOutputKey(k) {
			t.Errorf("runtime key %s is not an output key: a client could mistake it for configuration", k)
		}
	}
}
