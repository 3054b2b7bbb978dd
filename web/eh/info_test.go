package eh

import (
	"maps"
	"testing"
)

func TestServerInfoStopped(t *testing.T) {
	s := stored(t, Props{"ide:0:0": drive1, "boot": "ide:0:0", "nic:0:model": "e1000", "nic:0:dhcp": "auto",
		"vnc:ip": "auto", "vnc:password": "HWbjvrg2", "persistent": "true"})
	before := s.Clone()
	got := ServerInfo(s, nil)
	if !maps.Equal(s, before) {
		t.Errorf("ServerInfo modified stored")
	}
	want := before.Clone()
	want["vnc:password"] = "HWbjvrg2"
	want["vnc:ip"] = "auto"
	if !maps.Equal(got, want) {
		t.Errorf("ServerInfo(stopped) = %q\nwant %q", got, want)
	}
	// A configured VNC address shows as such while stopped.
	s["vnc"] = "192.0.2.9"
	if got := ServerInfo(s, nil); got["vnc:ip"] != "192.0.2.9" {
		t.Errorf("vnc:ip = %q, want the configured address", got["vnc:ip"])
	}
	// A server stored before the type key existed is a container.
	old := s.Clone()
	delete(old, "type")
	if got := ServerInfo(old, nil)["type"]; got != "container" {
		t.Errorf("type of a server stored without one = %q, want container", got)
	}
	// No VNC configured: no vnc:ip, no password aliases.
	bare := stored(t, nil)
	if got := ServerInfo(bare, nil); got["vnc:ip"] != "" || got["vnc:password"] != "" {
		t.Errorf("ServerInfo without vnc = %q", got)
	}
}

func TestServerInfoActive(t *testing.T) {
	s := stored(t, Props{"ide:0:0": drive1, "boot": "ide:0:0", "nic:0:model": "e1000", "nic:0:dhcp": "auto",
		"nic:1:model": "virtio", "nic:1:vlan": vlan1, "vnc": "auto", "password": "Ygqk8kkQ"})
	s["status"] = "active"
	runtime := Props{
		"started": "1445824156", "smp:cores": "1", "vnc:ip": "69.25.178.8", "vnc:port": "5901",
		"nic:0:ip": "69.25.178.8", "nic:0:mac": "6a:cc:d6:a2:8e:e3", "nic:1:mac": "02:00:00:00:00:02",
		"nic:0:rx:bytes": "20022431991", "nic:0:rx:packets": "81171700", "nic:0:tx:bytes": "13452547287", "nic:0:tx:packets": "79487515",
		"nic:1:rx:bytes": "9", "nic:1:rx:packets": "1", "nic:1:tx:bytes": "13", "nic:1:tx:packets": "2",
		"ide:0:0:read:bytes": "2068082688", "ide:0:0:read:requests": "135140",
		"ide:0:0:write:bytes": "109416628224", "ide:0:0:write:requests": "9072457",
		"name": "not from runtime", "error": "",
	}
	rtBefore := runtime.Clone()
	got := ServerInfo(s, runtime)
	if !maps.Equal(runtime, rtBefore) {
		t.Errorf("ServerInfo modified runtime")
	}
	want := map[string]string{
		"status": "active", "name": "web", "vnc": "auto", "vnc:ip": "69.25.178.8", "vnc:port": "5901",
		"password": "Ygqk8kkQ", "vnc:password": "Ygqk8kkQ", "nic:0:dhcp": "auto",
		"nic:0:dhcp:ip": "69.25.178.8", "nic:0:ip": "69.25.178.8", "nic:0:mac": "6a:cc:d6:a2:8e:e3",
		"started": "1445824156", "smp": "auto", "smp:cores": "1",
		"rx:bytes": "20022431991", "tx:bytes": "13452547287", "rx:packets": "81171700", "tx:packets": "79487515",
		"rx": "20022431991", "tx": "13452547287", "nic:1:rx:bytes": "9", "nic:1:tx:packets": "2",
		"ide:0:0:read:bytes": "2068082688", "ide:0:0:write:requests": "9072457",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if _, ok := got["error"]; ok {
		t.Errorf("an empty runtime value was copied")
	}

	// smp:cores falls back to a numeric smp; auto without runtime cores stays unresolved.
	s["smp"] = "4"
	if got := ServerInfo(s, Props{"started": "1"}); got["smp:cores"] != "4" || got["rx"] != "" {
		t.Errorf("smp 4 without runtime cores: smp:cores %q, rx %q", got["smp:cores"], got["rx"])
	}
}
