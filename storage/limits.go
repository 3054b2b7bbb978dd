package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// Limit names: what an admin may bound per user (the API's limit:NAME keys).
const (
	LimitServers = "servers" // number of servers
	LimitCPU     = "cpu"     // total cpu of the user's servers, MHz
	LimitMem     = "mem"     // total mem of the user's servers, MB
	LimitDrives  = "drives"  // total size of the user's drives, bytes
	LimitIPs     = "ips"     // number of static IPs
	LimitVLANs   = "vlans"   // number of VLANs
)

// LimitNames lists every limit, in the order they are shown.
var LimitNames = []string{LimitServers, LimitCPU, LimitMem, LimitDrives, LimitIPs, LimitVLANs}

// IsLimit reports whether name is one of LimitNames.
func IsLimit(name string) bool { return slices.Contains(LimitNames, name) }

// ErrLimit is a request that would take a user past one of their limits.
var ErrLimit = errors.New("over the user's limit")

// NoLimit, given to SetLimits, removes a limit.
const NoLimit = -1

// Amounts maps limit names to quantities in the units of the names' comments:
// a user's limits (an absent name is unlimited) or what they hold.
type Amounts map[string]int64

// LimitError says which limit a request would pass. It wraps ErrLimit.
type LimitError struct {
	Name        string // one of LimitNames
	Used, Asked int64  // held now, and what the request adds
	Max         int64
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("limit:%s: %s of %s (%s in use, this asks for %s more)",
		e.Name, amount(e.Name, e.Used+e.Asked), amount(e.Name, e.Max), amount(e.Name, e.Used), amount(e.Name, e.Asked))
}

func (e *LimitError) Unwrap() error { return ErrLimit }

// amount writes a quantity with its unit.
func amount(name string, n int64) string {
	switch name {
	case LimitCPU:
		return fmt.Sprintf("%d MHz", n)
	case LimitMem:
		return fmt.Sprintf("%d MB", n)
	case LimitDrives:
		return sizeText(n)
	case LimitServers, LimitIPs, LimitVLANs:
		unit := map[string]string{LimitServers: "server", LimitIPs: "static IP", LimitVLANs: "VLAN"}[name]
		if n != 1 {
			unit += "s"
		}
		return fmt.Sprintf("%d %s", n, unit)
	}
	return fmt.Sprint(n)
}

// sizeText writes a byte count in the largest power-of-1024 unit that
// divides it exactly (as sizes are given: 10G), else in bytes.
func sizeText(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.suffix)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}

// querier is a database or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func loadLimits(ctx context.Context, q querier, user string) (Amounts, error) {
	rows, err := q.QueryContext(ctx, `SELECT name, value FROM limits WHERE user = ?`, user)
	if err != nil {
		return nil, fmt.Errorf("storage: limits: %w", err)
	}
	defer rows.Close()
	out := Amounts{}
	for rows.Next() {
		var name string
		var v int64
		if err := rows.Scan(&name, &v); err != nil {
			return nil, err
		}
		out[name] = v
	}
	return out, rows.Err()
}

func loadUsage(ctx context.Context, q querier, user string) (Amounts, error) {
	var servers, cpu, mem, drives, ips, vlans int64
	err := q.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM servers WHERE owner = ?1),
		(SELECT coalesce(sum(CAST(json_extract(config, '$.cpu') AS INTEGER)), 0) FROM servers WHERE owner = ?1),
		(SELECT coalesce(sum(CAST(json_extract(config, '$.mem') AS INTEGER)), 0) FROM servers WHERE owner = ?1),
		(SELECT coalesce(sum(size), 0) FROM drives WHERE owner = ?1),
		(SELECT count(*) FROM resources WHERE owner = ?1 AND type = 'ip'),
		(SELECT count(*) FROM resources WHERE owner = ?1 AND type = 'vlan')`, user).
		Scan(&servers, &cpu, &mem, &drives, &ips, &vlans)
	if err != nil {
		return nil, fmt.Errorf("storage: usage: %w", err)
	}
	return Amounts{LimitServers: servers, LimitCPU: cpu, LimitMem: mem, LimitDrives: drives, LimitIPs: ips, LimitVLANs: vlans}, nil
}

// Limits returns a user's limits (an absent name is unlimited).
func (s *Store) Limits(ctx context.Context, user string) (Amounts, error) {
	if _, err := s.User(ctx, user); err != nil {
		return nil, err
	}
	return loadLimits(ctx, s.db, user)
}

// Usage returns what a user holds, in the units of their limits.
func (s *Store) Usage(ctx context.Context, user string) (Amounts, error) {
	return loadUsage(ctx, s.db, user)
}

// SetLimits changes a user's limits: each name to its value, or removed for
// NoLimit; names not given keep theirs. A limit below what the user holds
// already is allowed: it refuses their next request that adds to it.
func (s *Store) SetLimits(ctx context.Context, user string, changes Amounts) (Amounts, error) {
	for name, v := range changes {
		if !IsLimit(name) {
			return nil, fmt.Errorf("limit %q: %w", name, ErrInvalid)
		}
		if v < 0 && v != NoLimit {
			return nil, fmt.Errorf("limit %s %d: negative: %w", name, v, ErrInvalid)
		}
	}
	var out Amounts
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var name string
		err := tx.QueryRowContext(ctx, `SELECT name FROM users WHERE id = ?`, user).Scan(&name)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("user %s: %w", user, ErrNotFound)
		}
		if err != nil {
			return err
		}
		for _, l := range LimitNames {
			v, ok := changes[l]
			switch {
			case !ok:
				continue
			case v == NoLimit:
				_, err = tx.ExecContext(ctx, `DELETE FROM limits WHERE user = ? AND name = ?`, user, l)
			default:
				_, err = tx.ExecContext(ctx, `INSERT INTO limits (user, name, value) VALUES (?, ?, ?)
					ON CONFLICT (user, name) DO UPDATE SET value = excluded.value`, user, l, v)
			}
			if err != nil {
				return fmt.Errorf("storage: set limits: %w", err)
			}
		}
		if out, err = loadLimits(ctx, tx, user); err != nil {
			return err
		}
		return s.event(ctx, tx, user, "user.limits", "limits of user %s: %v", name, map[string]int64(out))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// checkLimits is a *LimitError when adding more to what owner holds passes
// one of owner's limits (only what grows is checked: shrinking is always
// allowed, also past a limit lowered since). It runs in the write
// transaction that makes the change, and those are BEGIN IMMEDIATE: two
// requests, from any process, cannot both see the room one of them takes.
func checkLimits(ctx context.Context, tx *sql.Tx, owner string, more Amounts) error {
	if !slices.ContainsFunc(slices.Collect(maps.Values(more)), func(n int64) bool { return n > 0 }) {
		return nil // nothing grows (a status change, a shrink): no query
	}
	limits, err := loadLimits(ctx, tx, owner)
	if err != nil || len(limits) == 0 {
		return err
	}
	used, err := loadUsage(ctx, tx, owner)
	if err != nil {
		return err
	}
	for _, name := range LimitNames {
		max, limited := limits[name]
		if asked := more[name]; limited && asked > 0 && used[name]+asked > max {
			return &LimitError{Name: name, Used: used[name], Asked: asked, Max: max}
		}
	}
	return nil
}

// checkDiskRoom is ErrFull when drives growing by grow bytes would make all
// drives together larger than the overcommit ratio times the filesystem of
// DATA/drives (thin provisioning: images are sparse, so they may promise
// more than the disk holds, up to that ratio). No ratio set: no bound.
func (s *Store) checkDiskRoom(ctx context.Context, tx *sql.Tx, grow int64) error {
	if s.overcommit <= 0 || grow <= 0 {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Join(s.dir, "drives"), &st); err != nil {
		return fmt.Errorf("storage: disk size: %w", err)
	}
	disk := int64(st.Blocks) * int64(st.Bsize)
	room := int64(float64(disk) * s.overcommit)
	var total int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(sum(size), 0) FROM drives`).Scan(&total); err != nil {
		return fmt.Errorf("storage: drive sizes: %w", err)
	}
	if total+grow > room {
		return fmt.Errorf("host disk: drives would total %s, past the %s this host provisions (%g × its %s disk; %s taken): %w",
			sizeText(total+grow), sizeText(room), s.overcommit, sizeText(disk), sizeText(total), ErrFull)
	}
	return nil
}
