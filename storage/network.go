package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Resource types.
const (
	ResourceIP   = "ip"
	ResourceVLAN = "vlan"
)

// Resource is a static IP address (ID = the address) or a VLAN (ID = a UUID).
// Props hold name and, for IPs, netmask, gateway and nameserver.
type Resource struct {
	ID      string
	Type    string
	Owner   string
	Props   map[string]string
	Created time.Time
}

func checkSubnet(p netip.Prefix) error {
	if !p.IsValid() || !p.Addr().Is4() || p.Bits() > 30 {
		return fmt.Errorf("subnet %s: want an IPv4 prefix of /30 or wider: %w", p, ErrInvalid)
	}
	return nil
}

// Subnet is the pool static IPs and leases are drawn from.
func (s *Store) Subnet() netip.Prefix { return s.subnet }

// Gateway is the subnet's first host address, owned by the public bridge.
func (s *Store) Gateway() netip.Addr { return s.subnet.Addr().Next() }

// Netmask is the subnet's mask in dotted form, e.g. 255.255.0.0.
func (s *Store) Netmask() string {
	return net.IP(net.CIDRMask(s.subnet.Bits(), 32)).String()
}

func (s *Store) lastHost() netip.Addr {
	a := s.subnet.Addr().As4()
	hostBits := 32 - s.subnet.Bits()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= 1<<hostBits - 1 // broadcast
	v--
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// freeAddress picks the lowest address of the pool that no IP resource, lease
// or the gateway uses. It runs inside the write transaction that takes it, so
// two allocations never collide.
func (s *Store) freeAddress(ctx context.Context, tx *sql.Tx) (netip.Addr, error) {
	used := map[string]bool{}
	for _, q := range []string{`SELECT id FROM resources WHERE type = 'ip'`, `SELECT address FROM leases`} {
		rows, err := tx.QueryContext(ctx, q)
		if err != nil {
			return netip.Addr{}, err
		}
		for rows.Next() {
			var a string
			if err := rows.Scan(&a); err != nil {
				rows.Close()
				return netip.Addr{}, err
			}
			used[a] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return netip.Addr{}, err
		}
	}
	last := s.lastHost()
	for a := s.Gateway().Next(); a.IsValid() && a.Compare(last) <= 0; a = a.Next() {
		if !used[a.String()] {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("address pool %s: %w", s.subnet, ErrFull)
}

const resourceColumns = `id, type, owner, props, created`

func scanResource(row interface{ Scan(...any) error }) (Resource, error) {
	var r Resource
	var props string
	var created int64
	if err := row.Scan(&r.ID, &r.Type, &r.Owner, &props, &created); err != nil {
		return Resource{}, err
	}
	if err := json.Unmarshal([]byte(props), &r.Props); err != nil {
		return Resource{}, fmt.Errorf("storage: resource %s: %w", r.ID, err)
	}
	if r.Props == nil {
		r.Props = map[string]string{}
	}
	r.Created = time.Unix(created, 0)
	return r, nil
}

// CreateIP allocates a static IP for owner from the pool; props (e.g. name)
// are kept, and netmask, gateway and nameserver are set from the pool.
func (s *Store) CreateIP(ctx context.Context, owner string, props map[string]string) (Resource, error) {
	r := Resource{Type: ResourceIP, Owner: owner, Props: maps.Clone(props), Created: s.now()}
	if r.Props == nil {
		r.Props = map[string]string{}
	}
	r.Props["netmask"] = s.Netmask()
	r.Props["gateway"] = s.Gateway().String()
	if r.Props["nameserver"] == "" {
		r.Props["nameserver"] = s.Gateway().String()
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := checkLimits(ctx, tx, owner, Amounts{LimitIPs: 1}); err != nil {
			return err
		}
		a, err := s.freeAddress(ctx, tx)
		if err != nil {
			return err
		}
		r.ID = a.String()
		return s.insertResource(ctx, tx, r)
	})
	if err != nil {
		return Resource{}, err
	}
	return r, nil
}

// CreateVLAN makes a VLAN resource for owner. Its UUID's first 8 hex digits
// differ from every other VLAN's: the guest network names VLAN bridges by them.
func (s *Store) CreateVLAN(ctx context.Context, owner string, props map[string]string) (Resource, error) {
	r := Resource{Type: ResourceVLAN, Owner: owner, Props: maps.Clone(props), Created: s.now()}
	if r.Props == nil {
		r.Props = map[string]string{}
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := checkLimits(ctx, tx, owner, Amounts{LimitVLANs: 1}); err != nil {
			return err
		}
		for {
			r.ID = uuid.NewString()
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM resources WHERE type = 'vlan' AND substr(id, 1, 8) = ?`, r.ID[:8]).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				break
			}
		}
		return s.insertResource(ctx, tx, r)
	})
	if err != nil {
		return Resource{}, err
	}
	return r, nil
}

func (s *Store) insertResource(ctx context.Context, tx *sql.Tx, r Resource) error {
	blob, err := json.Marshal(r.Props)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO resources (id, type, owner, props, created) VALUES (?, ?, ?, ?, ?)`,
		r.ID, r.Type, r.Owner, blob, r.Created.Unix()); err != nil {
		if strings.Contains(err.Error(), "FOREIGN KEY") {
			return fmt.Errorf("owner %s: %w", r.Owner, ErrNotFound)
		}
		return fmt.Errorf("storage: create %s: %w", r.Type, err)
	}
	return s.event(ctx, tx, r.ID, "resource.create", "%s %s created", r.Type, r.ID)
}

// Resource returns one resource of a type.
func (s *Store) Resource(ctx context.Context, typ, id string) (Resource, error) {
	r, err := scanResource(s.db.QueryRowContext(ctx, `SELECT `+resourceColumns+` FROM resources WHERE type = ? AND id = ?`, typ, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Resource{}, fmt.Errorf("%s %s: %w", typ, id, ErrNotFound)
	}
	return r, err
}

// Resources lists resources of owner (all owners when empty) and of typ (all
// types when empty), oldest first.
func (s *Store) Resources(ctx context.Context, owner, typ string) ([]Resource, error) {
	q := `SELECT ` + resourceColumns + ` FROM resources WHERE (? = '' OR owner = ?) AND (? = '' OR type = ?) ORDER BY type, rowid`
	return queryAll(ctx, s.db, "resources", q, scanResource, owner, owner, typ, typ)
}

// UpdateResource changes a resource's Props atomically (fn runs in the write
// transaction and must not call the Store).
func (s *Store) UpdateResource(ctx context.Context, typ, id string, fn func(*Resource) error) (Resource, error) {
	var r Resource
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		r, err = scanResource(tx.QueryRowContext(ctx, `SELECT `+resourceColumns+` FROM resources WHERE type = ? AND id = ?`, typ, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%s %s: %w", typ, id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if err := fn(&r); err != nil {
			return err
		}
		blob, err := json.Marshal(r.Props)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE resources SET props = ? WHERE type = ? AND id = ?`, blob, typ, id)
		return err
	})
	if err != nil {
		return Resource{}, err
	}
	return r, nil
}

// resourceKey is the server configuration key that refers to a resource type.
var resourceKey = map[string]string{ResourceIP: "nic:0:dhcp", ResourceVLAN: "nic:1:vlan"}

// ResourceUsers lists the servers whose configuration refers to a resource.
func (s *Store) ResourceUsers(ctx context.Context, typ, id string) ([]string, error) {
	return s.serverIDs(ctx, "resource users", `SELECT id FROM servers WHERE json_extract(config, '$."`+resourceKey[typ]+`"') = ? ORDER BY id`, id)
}

// KeyError is a refusal caused by one configuration key (for a form to
// show it next to the field); Err wraps the sentinel.
type KeyError struct {
	Key string
	Err error
}

func (e *KeyError) Error() string { return e.Err.Error() }
func (e *KeyError) Unwrap() error { return e.Err }

// checkMACs refuses a configuration of server whose nic:0:mac or nic:1:mac
// another server has (whoever owns it): a MAC is a NIC's identity on the
// bridge (DHCP, anti-spoofing). Run inside the write transaction, so two
// requests racing for one MAC cannot both have it.
func checkMACs(ctx context.Context, tx *sql.Tx, server string, config map[string]string) error {
	for _, key := range []string{"nic:0:mac", "nic:1:mac"} {
		mac := strings.ToLower(config[key])
		if mac == "" {
			continue
		}
		var other string
		err := tx.QueryRowContext(ctx, `SELECT id FROM servers WHERE id != ?1 AND (lower(json_extract(config, '$."nic:0:mac"')) = ?2 OR lower(json_extract(config, '$."nic:1:mac"')) = ?2) LIMIT 1`,
			server, mac).Scan(&other)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return fmt.Errorf("storage: servers with MAC %s: %w", mac, err)
		}
		return &KeyError{Key: key, Err: fmt.Errorf("key %s: MAC %s is already used by another server: %w", key, mac, ErrBusy)}
	}
	return nil
}

// serverIDs runs a query of server ids.
func (s *Store) serverIDs(ctx context.Context, what, q string, args ...any) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("storage: %s: %w", what, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var srv string
		if err := rows.Scan(&srv); err != nil {
			return nil, err
		}
		out = append(out, srv)
	}
	return out, rows.Err()
}

// DeleteResource removes a resource. One that a server's configuration still
// refers to is ErrBusy naming the server.
func (s *Store) DeleteResource(ctx context.Context, typ, id string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		r, err := scanResource(tx.QueryRowContext(ctx, `SELECT `+resourceColumns+` FROM resources WHERE type = ? AND id = ?`, typ, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%s %s: %w", typ, id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		srv := Server{}
		var config string
		err = tx.QueryRowContext(ctx, `SELECT id, config FROM servers WHERE json_extract(config, '$."`+resourceKey[typ]+`"') = ? LIMIT 1`, id).Scan(&srv.ID, &config)
		if err == nil {
			srv.Config, _ = decodeProps(config) // a config that cannot be read names the server by UUID
			return fmt.Errorf("%s is used by server %s (%s) — change that server's network first: %w", r.Label(), srv.Label(), resourceKey[typ], ErrBusy)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM resources WHERE type = ? AND id = ?`, typ, id); err != nil {
			return fmt.Errorf("storage: delete %s: %w", typ, err)
		}
		return s.event(ctx, tx, id, "resource.destroy", "%s %s destroyed", typ, id)
	})
}

// AllocateLease gives a server a dynamic address from the pool (for
// `nic:0:dhcp auto`), or returns the one it already holds.
func (s *Store) AllocateLease(ctx context.Context, server string) (netip.Addr, error) {
	var addr netip.Addr
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var a string
		err := tx.QueryRowContext(ctx, `SELECT address FROM leases WHERE server = ?`, server).Scan(&a)
		if err == nil {
			addr, err = netip.ParseAddr(a)
			return err
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if addr, err = s.freeAddress(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO leases (address, server, created) VALUES (?, ?, ?)`,
			addr.String(), server, s.now().Unix()); err != nil {
			if strings.Contains(err.Error(), "FOREIGN KEY") {
				return fmt.Errorf("server %s: %w", server, ErrNotFound)
			}
			return fmt.Errorf("storage: lease: %w", err)
		}
		return s.event(ctx, tx, server, "lease", "leased %s", addr)
	})
	if err != nil {
		return netip.Addr{}, err
	}
	return addr, nil
}

// Lease returns the address a server holds (ErrNotFound when none).
func (s *Store) Lease(ctx context.Context, server string) (netip.Addr, error) {
	var a string
	err := s.queryRow(ctx, `SELECT address FROM leases WHERE server = ?`, server).Scan(&a)
	if errors.Is(err, sql.ErrNoRows) {
		return netip.Addr{}, fmt.Errorf("lease of server %s: %w", server, ErrNotFound)
	}
	if err != nil {
		return netip.Addr{}, err
	}
	return netip.ParseAddr(a)
}

// ReleaseLease gives a server's dynamic address back (idempotent).
func (s *Store) ReleaseLease(ctx context.Context, server string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE server = ?`, server)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			return s.event(ctx, tx, server, "lease", "lease released")
		}
		return nil
	})
}
