package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"hearth/internal/ehkeys"
)

// Server statuses.
const (
	StatusStopped = "stopped"
	StatusActive  = "active"
	StatusPaused  = "paused"
	StatusDead    = "dead"
)

// Running reports whether a server in this status has a guest that runs
// (active, or paused: frozen but still there).
func Running(status string) bool { return status == StatusActive || status == StatusPaused }

// Server is a guest definition. Config holds its configuration keys in their
// canonical form (the API's key schema validates and normalises them before
// they get here); runtime keys are not stored.
type Server struct {
	ID      string
	Owner   string
	Status  string
	Config  map[string]string
	Started time.Time // zero unless active or paused
	Error   string    // why the server is dead; empty otherwise
	Created time.Time
}

const serverColumns = `id, owner, status, config, started, error, created`

func scanServer(row interface{ Scan(...any) error }) (Server, error) {
	var srv Server
	var config string
	var started, created int64
	if err := row.Scan(&srv.ID, &srv.Owner, &srv.Status, &config, &started, &srv.Error, &created); err != nil {
		return Server{}, err
	}
	var err error
	if srv.Config, err = decodeProps(config); err != nil {
		return Server{}, fmt.Errorf("storage: server %s: config: %w", srv.ID, err)
	}
	if srv.Config == nil {
		srv.Config = map[string]string{}
	}
	if started != 0 {
		srv.Started = time.Unix(started, 0)
	}
	srv.Created = time.Unix(created, 0)
	return srv, nil
}

// CreateServer stores a new server, status stopped, owned by owner.
func (s *Store) CreateServer(ctx context.Context, owner string, config map[string]string) (Server, error) {
	srv := Server{ID: uuid.NewString(), Owner: owner, Status: StatusStopped, Config: maps.Clone(config), Created: s.now()}
	if srv.Config == nil {
		srv.Config = map[string]string{}
	}
	if srv.Config["name"] == "" {
		// Every server shows a name (clients index by it; it becomes the
		// guest's hostname): without one given, its UUID.
		srv.Config["name"] = srv.ID
	}
	blob, err := json.Marshal(srv.Config)
	if err != nil {
		return Server{}, err
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if err := checkMACs(ctx, tx, srv.ID, srv.Config); err != nil {
			return err
		}
		if err := checkLimits(ctx, tx, owner, Amounts{LimitServers: 1,
			LimitCPU: configInt(srv.Config, "cpu"), LimitMem: configInt(srv.Config, "mem")}); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO servers (id, owner, status, config, created) VALUES (?, ?, ?, ?, ?)`,
			srv.ID, owner, srv.Status, blob, srv.Created.Unix()); err != nil {
			if strings.Contains(err.Error(), "FOREIGN KEY") {
				return fmt.Errorf("owner %s: %w", owner, ErrNotFound)
			}
			return fmt.Errorf("storage: create server: %w", err)
		}
		return s.event(ctx, tx, srv.ID, "server.create", "server %q created", srv.Config["name"])
	})
	if err != nil {
		return Server{}, err
	}
	return srv, nil
}

// Server returns one server.
func (s *Store) Server(ctx context.Context, id string) (Server, error) {
	srv, err := scanServer(s.queryRow(ctx, `SELECT `+serverColumns+` FROM servers WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Server{}, fmt.Errorf("server %s: %w", id, ErrNotFound)
	}
	return srv, err
}

// Servers lists the servers of owner (all servers when owner is empty),
// oldest first.
func (s *Store) Servers(ctx context.Context, owner string) ([]Server, error) {
	if owner == "" {
		return s.queryServers(ctx, `SELECT `+serverColumns+` FROM servers ORDER BY rowid`)
	}
	return s.queryServers(ctx, `SELECT `+serverColumns+` FROM servers WHERE owner = ? ORDER BY rowid`, owner)
}

// ServersByStatus lists the servers in any of the given statuses, for the
// guest layer's reconciliation at start.
func (s *Store) ServersByStatus(ctx context.Context, statuses ...string) ([]Server, error) {
	if len(statuses) == 0 {
		return nil, nil
	}
	args := make([]any, len(statuses))
	for i, st := range statuses {
		args[i] = st
	}
	q := `SELECT ` + serverColumns + ` FROM servers WHERE status IN (?` + strings.Repeat(",?", len(statuses)-1) + `) ORDER BY rowid`
	return s.queryServers(ctx, q, args...)
}

func (s *Store) queryServers(ctx context.Context, q string, args ...any) ([]Server, error) {
	return queryAll(ctx, s.db, "servers", q, scanServer, args...)
}

// UpdateServer changes a server atomically: fn gets the current state and may
// change Config, Status, Started and Error; when fn returns an error nothing
// is written. fn runs inside the write transaction, so it must not call the
// Store. Status changes go to the event log.
func (s *Store) UpdateServer(ctx context.Context, id string, fn func(*Server) error) (Server, error) {
	var srv Server
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		srv, err = scanServer(tx.QueryRowContext(ctx, `SELECT `+serverColumns+` FROM servers WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("server %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		before := srv
		before.Config = maps.Clone(srv.Config)
		if err := fn(&srv); err != nil {
			return err
		}
		if err := checkStatus(srv.Status); err != nil {
			return err
		}
		if err := checkMACs(ctx, tx, srv.ID, srv.Config); err != nil {
			return err
		}
		if err := checkLimits(ctx, tx, srv.Owner, Amounts{
			LimitCPU: configInt(srv.Config, "cpu") - configInt(before.Config, "cpu"),
			LimitMem: configInt(srv.Config, "mem") - configInt(before.Config, "mem"),
		}); err != nil {
			return err
		}
		if srv.Config == nil {
			srv.Config = map[string]string{}
		}
		blob, err := json.Marshal(srv.Config)
		if err != nil {
			return err
		}
		var started int64
		if !srv.Started.IsZero() {
			started = srv.Started.Unix()
		}
		if _, err := tx.ExecContext(ctx, `UPDATE servers SET status = ?, config = ?, started = ?, error = ? WHERE id = ?`,
			srv.Status, blob, started, srv.Error, id); err != nil {
			return fmt.Errorf("storage: update server: %w", err)
		}
		if srv.Status != before.Status {
			msg := fmt.Sprintf("%s → %s", before.Status, srv.Status)
			if srv.Error != "" {
				msg += ": " + srv.Error
			}
			if err := s.event(ctx, tx, id, "server.status", "%s", msg); err != nil {
				return err
			}
		}
		if !maps.Equal(before.Config, srv.Config) {
			return s.event(ctx, tx, id, "server.set", "configuration changed: %s", changedKeys(before.Config, srv.Config))
		}
		return nil
	})
	if err != nil {
		return Server{}, err
	}
	return srv, nil
}

// configInt is a numeric configuration key's value (cpu MHz, mem MB); 0
// when absent or not a number, as the usage query counts it.
func configInt(config map[string]string, key string) int64 {
	n, _ := strconv.ParseInt(config[key], 10, 64)
	return n
}

// SetServerStatus records a lifecycle transition: the new status, when the
// guest started (zero unless active or paused) and why it is dead (empty
// unless dead).
func (s *Store) SetServerStatus(ctx context.Context, id, status string, started time.Time, reason string) (Server, error) {
	return s.UpdateServer(ctx, id, func(srv *Server) error {
		srv.Status, srv.Started, srv.Error = status, started, reason
		return nil
	})
}

func checkStatus(status string) error {
	switch status {
	case StatusStopped, StatusActive, StatusPaused, StatusDead:
		return nil
	}
	return fmt.Errorf("server status %q: %w", status, ErrInvalid)
}

func changedKeys(before, after map[string]string) string {
	var keys []string
	for k, v := range after {
		if old, ok := before[k]; !ok || old != v {
			keys = append(keys, k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return strings.Join(keys, " ")
}

// DeleteServer removes a server with its lease and claims. A running
// (active or paused) server is ErrBusy: the guest layer stops it first.
func (s *Store) DeleteServer(ctx context.Context, id string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var status string
		err := tx.QueryRowContext(ctx, `SELECT status FROM servers WHERE id = ?`, id).Scan(&status)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("server %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if Running(status) {
			return fmt.Errorf("server %s is %s: %w", id, status, ErrBusy)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM servers WHERE id = ?`, id); err != nil {
			return fmt.Errorf("storage: delete server: %w", err)
		}
		return s.event(ctx, tx, id, "server.destroy", "server destroyed")
	})
}

// Attachment is one drive a server's configuration attaches.
type Attachment struct {
	Device string // configuration key, e.g. "ide:0:0"
	Drive  Drive
	Path   string // the drive's image file
	// ReadOnly: the guest must never write the drive (see AttachedReadOnly).
	ReadOnly bool
}

// AttachedReadOnly reports whether device dev of a server's configuration
// attaches drive d read-only: with DEV:media cdrom, or when the server's
// owner may only read the drive (a library image, another user's drive
// shared through readers). An admin's server may write any drive, as the
// admin may through the API.
func AttachedReadOnly(config map[string]string, dev string, d Drive, owner string, ownerAdmin bool) bool {
	return config[dev+":media"] == "cdrom" || (d.Owner != owner && !ownerAdmin)
}

// ServerDrives returns the drives a server attaches, in device order. A
// device whose drive does not exist is an error wrapping ErrNotFound that
// names the device and the drive.
func (s *Store) ServerDrives(ctx context.Context, server string) ([]Attachment, error) {
	srv, err := s.Server(ctx, server)
	if err != nil {
		return nil, err
	}
	admin, err := s.isAdmin(ctx, s.db, srv.Owner)
	if err != nil {
		return nil, err
	}
	var out []Attachment
	for _, dev := range deviceKeys(srv.Config) {
		d, err := s.Drive(ctx, srv.Config[dev])
		if err != nil {
			return nil, fmt.Errorf("%s: drive %s: %w", dev, srv.Config[dev], ErrNotFound)
		}
		out = append(out, Attachment{Device: dev, Drive: d, Path: s.DrivePath(d.ID),
			ReadOnly: AttachedReadOnly(srv.Config, dev, d, srv.Owner, admin)})
	}
	return out, nil
}

// rowQuerier is what both *sql.DB and *sql.Tx answer.
type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// isAdmin reports whether user is an admin (a user gone is none).
func (s *Store) isAdmin(ctx context.Context, q rowQuerier, user string) (bool, error) {
	var admin bool
	err := q.QueryRowContext(ctx, `SELECT admin FROM users WHERE id = ?`, user).Scan(&admin)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("storage: user %s: %w", user, err)
	}
	return admin, nil
}

// deviceKeys lists the device keys of a configuration that name a drive, sorted.
func deviceKeys(config map[string]string) []string {
	var devs []string
	for k, v := range config {
		if ehkeys.IsDeviceKey(k) && v != "" {
			devs = append(devs, k)
		}
	}
	sort.Strings(devs)
	return devs
}
