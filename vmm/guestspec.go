package vmm

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"hearth/internal/ehkeys"
	"hearth/storage"
	"hearth/vmm/guest"
	"hearth/vmm/network"
)

// guestSpec turns a server's configuration into a guest.Spec: drives, NICs
// (with a lease for nic:0:dhcp auto and a MAC made and kept where unset),
// cpu, smp, mem, hostname, and the server's slot of host ids.
func (m *Manager) guestSpec(ctx context.Context, srv storage.Server) (guest.Spec, error) {
	cfg := srv.Config
	spec := guest.Spec{ID: srv.ID, Hostname: dnsName(cfg["name"], srv.ID), Type: guest.TypeContainer}
	switch t := guest.Type(cfg["type"]); t {
	case "", guest.TypeContainer:
	case guest.TypeVM:
		spec.Type = t
	default:
		return spec, fmt.Errorf("key type: %q is not container or vm: %w", t, ErrInvalid)
	}
	var err error
	if spec.CPU, err = atoiKey(cfg, "cpu"); err != nil {
		return spec, err
	}
	if s := cfg["smp"]; s != "" && s != "auto" {
		if spec.SMP, err = atoiKey(cfg, "smp"); err != nil {
			return spec, err
		}
	}
	mem, err := atoiKey(cfg, "mem")
	if err != nil {
		return spec, err
	}
	spec.Mem = int64(mem)

	drives, err := m.store.ServerDrives(ctx, srv.ID)
	if err != nil {
		return spec, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	boot, ok := ehkeys.BootDevice(cfg)
	if ds := ehkeys.Devices(cfg); !ok && spec.VM() && len(ds) > 0 {
		// A VM boots an installer CD alone: its firmware tries the drives.
		boot = ds[0]
	}
	spec.BootOrder = strings.Fields(cfg["boot"])
	for _, d := range drives {
		cdrom := cfg[d.Device+":media"] == "cdrom"
		if d.Device == boot.Key {
			spec.Boot = guest.Disk{Device: d.Device, Key: d.Device, Image: d.Path, ReadOnly: d.ReadOnly, CDROM: cdrom}
			continue
		}
		name, ok := ehkeys.GuestDeviceName(d.Device)
		if !ok {
			return spec, fmt.Errorf("drive on %q: no such device: %w", d.Device, ErrInvalid)
		}
		spec.Disks = append(spec.Disks, guest.Disk{Device: name, Key: d.Device, Image: d.Path, ReadOnly: d.ReadOnly, CDROM: cdrom})
	}
	if spec.Boot.Image == "" {
		return spec, fmt.Errorf("server %s has no boot drive (key boot, or a drive on ide/scsi/block): %w", srv.Label(), ErrBootDrive)
	}
	// The server keeps its block of host ids for life: the files its guest
	// writes keep their owners across restarts.
	if spec.IDSlot, err = m.store.IDSlot(ctx, srv.ID); err != nil {
		return spec, err
	}
	spec.NICs, err = m.nics(ctx, srv)
	return spec, err
}

func atoiKey(cfg map[string]string, key string) (int, error) {
	v := cfg[key]
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("key %s: %q is not a count: %w", key, v, ErrInvalid)
	}
	return n, nil
}

// nics builds nic:0 (public bridge, address from the lease or the static IP
// resource) and nic:1 (the VLAN's bridge, no address).
func (m *Manager) nics(ctx context.Context, srv storage.Server) ([]guest.NIC, error) {
	cfg := srv.Config
	var nics []guest.NIC
	for i := 0; i <= 1; i++ {
		p := fmt.Sprintf("nic:%d:", i)
		if cfg[p+"model"] == "" && (i == 0 || cfg[p+"vlan"] == "") {
			continue
		}
		fw, err := firewall(cfg, p)
		if err != nil {
			return nil, err
		}
		nic := guest.NIC{Index: i, MAC: cfg[p+"mac"], Firewall: fw, Model: cfg[p+"model"]}
		if nic.MAC == "" {
			nic.MAC = network.RandomMAC()
			if _, err := m.store.UpdateServer(ctx, srv.ID, func(s *storage.Server) error {
				s.Config[p+"mac"] = nic.MAC
				return nil
			}); err != nil {
				return nil, err
			}
		}
		if i == 0 {
			nic.Bridge, nic.Hostname = m.bridge, dnsName(cfg["name"], srv.ID) // DHCP's host name option
			var addr netip.Addr
			switch dhcp := cfg["nic:0:dhcp"]; dhcp {
			case "":
			case "auto":
				a, err := m.store.AllocateLease(ctx, srv.ID)
				if err != nil {
					return nil, err
				}
				addr = a
			default:
				a, err := netip.ParseAddr(dhcp)
				if err != nil {
					return nil, fmt.Errorf("key nic:0:dhcp: %q: %w", dhcp, ErrInvalid)
				}
				addr = a
			}
			if addr.IsValid() {
				nic.Address = netip.PrefixFrom(addr, m.store.Subnet().Bits())
				nic.Gateway = m.store.Gateway()
			}
		} else {
			nic.Bridge = m.names.VLANBridge(cfg[p+"vlan"])
		}
		nics = append(nics, nic)
	}
	return nics, nil
}

// firewall reads the firewall keys of the NIC whose keys start with p.
func firewall(cfg map[string]string, p string) (guest.Firewall, error) {
	var fw guest.Firewall
	switch policy := cfg[p+"firewall:policy"]; policy {
	case "", "accept":
	case "reject":
		fw.Reject = true
	default:
		return fw, fmt.Errorf("key %sfirewall:policy: %q: %w", p, policy, ErrInvalid)
	}
	var err error
	for _, l := range []struct {
		key  string
		list *[]ehkeys.PortRule
	}{{"firewall:accept", &fw.Accept}, {"firewall:reject", &fw.Refuse}, {"block", &fw.Block}} {
		if *l.list, err = ehkeys.ParsePortRules(cfg[p+l.key]); err != nil {
			return fw, fmt.Errorf("key %s%s: %v: %w", p, l.key, err, ErrInvalid)
		}
	}
	return fw, nil
}

// dnsName makes a server name a DNS-safe hostname.
func dnsName(name, id string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	host := strings.Trim(b.String(), "-")
	if len(host) > 63 {
		host = strings.Trim(host[:63], "-")
	}
	if host == "" {
		host = "server-" + strings.SplitN(id, "-", 2)[0]
	}
	return host
}
