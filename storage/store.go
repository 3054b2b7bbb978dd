package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"modernc.org/sqlite" // also registers the "sqlite" database/sql driver
)

// Sentinel errors. Every error the store returns for one of these conditions
// wraps the sentinel, so callers map them with errors.Is.
var (
	ErrNotFound = errors.New("not found")        // no such object (or not visible)
	ErrExists   = errors.New("already exists")   // a unique name or address is taken
	ErrBusy     = errors.New("busy")             // imaging, claimed, or in a state that forbids it
	ErrInvalid  = errors.New("invalid argument") // a value the store cannot accept
	ErrFull     = errors.New("no capacity left") // the address pool is exhausted
	ErrAuth     = errors.New("bad credentials")  // unknown user or wrong secret
	ErrTooLarge = errors.New("beyond the end of the drive")
)

// Everyone is the readers entry that lets every user read a drive.
const Everyone = "ffffffff-ffff-ffff-ffff-ffffffffffff"

// DefaultSubnet is the address pool when none is configured.
var DefaultSubnet = netip.MustParsePrefix("10.73.0.0/16")

// Store is Hearth's state: one SQLite database plus a directory of drive
// images. It is safe for concurrent use, also by several processes at once
// (the `hearth user` and `hearth image` subcommands run beside `serve`).
type Store struct {
	db     *sql.DB
	dir    string
	hostID string
	subnet netip.Prefix
	log    *slog.Logger
	now    func() time.Time

	imager *imager

	// drives keeps resizes, imaging and destroys apart from transfers per drive.
	drives driveLocks
	// lockWait bounds how long a drive operation waits for the drive's holder.
	lockWait time.Duration
	// stmts caches prepared statements of the hot read paths.
	stmts sync.Map // query → *sql.Stmt
	// logins caches recent successful authentications (see Authenticate).
	logins sync.Map // login → loginEntry
	// overcommit bounds the sum of drive sizes to this many times the
	// filesystem of DATA/drives (WithDiskOvercommit); 0: no bound.
	overcommit float64
}

type options struct {
	log            *slog.Logger
	now            func() time.Time
	subnet         netip.Prefix
	imagingWorkers int
	imagingGate    func(ctx context.Context, drive string) error
	noMaintenance  bool
	overcommit     float64
}

// Option configures Open.
type Option func(*options)

// WithLogger sets where the store reports what it repaired or could not do
// (default: nowhere).
func WithLogger(log *slog.Logger) Option { return func(o *options) { o.log = log } }

// WithClock sets the clock used for timestamps (tests freeze it).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithSubnet sets the address pool for static IPs and dynamic leases. Its
// first host address is the gateway (the public bridge's own address).
func WithSubnet(p netip.Prefix) Option { return func(o *options) { o.subnet = p.Masked() } }

// WithImagingGate runs gate before each imaging job copies into drive; the
// job waits for it, and fails with its error. Tests hold a copy in flight
// with it, to see what a drive being imaged answers.
func WithImagingGate(gate func(ctx context.Context, drive string) error) Option {
	return func(o *options) { o.imagingGate = gate }
}

// WithDiskOvercommit bounds thin provisioning: drives may together be at
// most ratio times the size of the filesystem holding DATA/drives; creates,
// resizes and clones past that are ErrFull. 0 (the default) is no bound.
func WithDiskOvercommit(ratio float64) Option { return func(o *options) { o.overcommit = ratio } }

// WithImagingWorkers bounds how many drive imaging jobs run at once (default 2).
func WithImagingWorkers(n int) Option { return func(o *options) { o.imagingWorkers = n } }

// WithoutMaintenance opens the store without repairing what a crash left
// (the orphan sweep), without imaging workers and without resuming
// interrupted jobs: for short-lived commands (`hearth user`, `hearth image`)
// that may run beside a serving Hearth, which owns all of that. Such a store
// cannot start imaging jobs.
func WithoutMaintenance() Option { return func(o *options) { o.noMaintenance = true } }

// Open opens (creating where needed) the state below dataDir: DATA/hearth.db,
// DATA/drives and DATA/run. It migrates the schema, repairs what a crash left
// behind (orphan image files, image files of the wrong size) and resumes
// interrupted imaging jobs.
func Open(dataDir string, opts ...Option) (*Store, error) {
	o := options{
		log:            slog.New(slog.DiscardHandler),
		now:            time.Now,
		subnet:         DefaultSubnet,
		imagingWorkers: 2,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if err := checkSubnet(o.subnet); err != nil {
		return nil, err
	}
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{dataDir, filepath.Join(dataDir, "drives"), filepath.Join(dataDir, "run")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("storage: %w", err)
		}
	}
	// The database holds secret hashes: make it (and so its -wal and -shm
	// files, which SQLite creates with the same mode) private before first use.
	dbPath := filepath.Join(dataDir, "hearth.db")
	if f, err := os.OpenFile(dbPath, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	} else {
		f.Close()
	}
	dsn := (&url.URL{Scheme: "file", Path: dbPath}).String() + "?" + url.Values{
		"_pragma": {"busy_timeout(10000)", "foreign_keys(1)", "journal_mode(WAL)", "synchronous(NORMAL)"},
		"_txlock": {"immediate"},
	}.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("storage: open database: %w", err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	s := &Store{db: db, dir: dataDir, subnet: o.subnet, log: o.log, now: o.now, lockWait: defaultLockWait, overcommit: o.overcommit}
	ctx := context.Background()
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if s.hostID, err = s.loadHostID(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if !o.noMaintenance {
		if err := s.sweepDrives(ctx); err != nil {
			db.Close()
			return nil, err
		}
		s.imager = newImager(s, o.imagingWorkers, o.imagingGate)
		if err := s.resumeImaging(ctx); err != nil {
			s.imager.close()
			db.Close()
			return nil, err
		}
	}
	return s, nil
}

// Close stops the imaging workers (a running job is interrupted and resumed by
// the next Open) and closes the database.
func (s *Store) Close() error {
	if s.imager != nil {
		s.imager.close()
	}
	s.stmts.Range(func(_, v any) bool { v.(*sql.Stmt).Close(); return true })
	return s.db.Close()
}

// queryRow runs a single-row query through a cached prepared statement: the
// hot read paths (authentication, one server, one drive) skip SQLite's
// parsing and planning on every request.
func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st, ok := s.stmts.Load(query); ok {
		return st.(*sql.Stmt).QueryRowContext(ctx, args...)
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return s.db.QueryRowContext(ctx, query, args...) // reports the same error
	}
	if prev, loaded := s.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		st = prev.(*sql.Stmt)
	}
	return st.QueryRowContext(ctx, args...)
}

// Dir is the data directory. RunDir is DATA/run, for per-server runtime files.
func (s *Store) Dir() string    { return s.dir }
func (s *Store) RunDir() string { return filepath.Join(s.dir, "run") }

// HostID is this host's UUID, the first field of drive claim tokens.
func (s *Store) HostID() string { return s.hostID }

// DrivePath is the image file of a drive: DATA/drives/UUID.img.
func (s *Store) DrivePath(drive string) string {
	return filepath.Join(s.dir, "drives", drive+".img")
}

// migrations are applied in order; PRAGMA user_version counts those done.
// Never edit one that has shipped: append a new one.
var migrations = []string{
	`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
	CREATE TABLE users (
		id TEXT PRIMARY KEY,
		name TEXT NOT NULL UNIQUE,
		secret_sha256 BLOB NOT NULL,
		admin INTEGER NOT NULL DEFAULT 0,
		created INTEGER NOT NULL
	);
	CREATE TABLE servers (
		id TEXT PRIMARY KEY,
		owner TEXT NOT NULL REFERENCES users(id),
		status TEXT NOT NULL CHECK (status IN ('stopped','active','paused','dead')),
		config TEXT NOT NULL,
		started INTEGER NOT NULL DEFAULT 0,
		error TEXT NOT NULL DEFAULT '',
		created INTEGER NOT NULL
	);
	CREATE INDEX servers_owner ON servers(owner);
	CREATE INDEX servers_status ON servers(status);
	CREATE TABLE drives (
		id TEXT PRIMARY KEY,
		owner TEXT NOT NULL REFERENCES users(id),
		name TEXT NOT NULL,
		size INTEGER NOT NULL CHECK (size >= 0),
		props TEXT NOT NULL,
		library INTEGER NOT NULL DEFAULT 0,
		imaging TEXT NOT NULL DEFAULT '',
		imaging_source TEXT NOT NULL DEFAULT '',
		imaging_conversion TEXT NOT NULL DEFAULT '',
		read_bytes INTEGER NOT NULL DEFAULT 0,
		read_requests INTEGER NOT NULL DEFAULT 0,
		write_bytes INTEGER NOT NULL DEFAULT 0,
		write_requests INTEGER NOT NULL DEFAULT 0,
		created INTEGER NOT NULL
	);
	CREATE INDEX drives_owner ON drives(owner);
	CREATE TABLE claims (
		drive TEXT NOT NULL REFERENCES drives(id),
		server TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
		device TEXT NOT NULL,
		PRIMARY KEY (drive, server, device)
	);
	CREATE INDEX claims_server ON claims(server);
	CREATE TABLE resources (
		id TEXT PRIMARY KEY,
		type TEXT NOT NULL CHECK (type IN ('ip','vlan')),
		owner TEXT NOT NULL REFERENCES users(id),
		props TEXT NOT NULL,
		created INTEGER NOT NULL
	);
	CREATE INDEX resources_owner ON resources(owner);
	CREATE TABLE leases (
		address TEXT PRIMARY KEY,
		server TEXT NOT NULL UNIQUE REFERENCES servers(id) ON DELETE CASCADE,
		created INTEGER NOT NULL
	);
	CREATE TABLE events (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		time INTEGER NOT NULL,
		object TEXT NOT NULL,
		kind TEXT NOT NULL,
		message TEXT NOT NULL
	);
	CREATE INDEX events_object ON events(object);`,
	// Each server's slot of host user and group ids for its user namespace.
	`CREATE TABLE idslots (
		server TEXT PRIMARY KEY REFERENCES servers(id) ON DELETE CASCADE,
		slot INTEGER NOT NULL UNIQUE CHECK (slot >= 0)
	);`,
	// Per-user limits (quotas) an admin sets; a missing row is no limit.
	`CREATE TABLE limits (
		user TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
		name TEXT NOT NULL,
		value INTEGER NOT NULL CHECK (value >= 0),
		PRIMARY KEY (user, name)
	);
	-- No drive was ever encrypted: the cipher a client asked for was only recorded.
	UPDATE drives SET props = json_set(props, '$."encryption:cipher"', 'none')
		WHERE json_extract(props, '$."encryption:cipher"') NOT IN ('none');`,
	// Dashboard sessions, so that a restart keeps people logged in. Only a
	// hash of the id is kept: a copy of the database opens no session.
	`CREATE TABLE sessions (
		id_sha256 BLOB PRIMARY KEY,
		user TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
		csrf TEXT NOT NULL,
		last_seen INTEGER NOT NULL
	);
	CREATE INDEX sessions_user ON sessions(user);`,
	// Servers' activity history for the dashboard's graphs (see samples.go):
	// rates per second, one tier per resolution, bounded per server.
	`CREATE TABLE samples (
		server TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
		tier INTEGER NOT NULL,
		time INTEGER NOT NULL,
		cpu REAL,
		memory REAL,
		rx REAL NOT NULL,
		tx REAL NOT NULL,
		read REAL NOT NULL,
		write REAL NOT NULL,
		PRIMARY KEY (server, tier, time)
	) WITHOUT ROWID;`,
}

func (s *Store) migrate(ctx context.Context) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var version int
		if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
			return fmt.Errorf("storage: schema version: %w", err)
		}
		if version > len(migrations) {
			return fmt.Errorf("storage: database schema %d is newer than this binary's %d", version, len(migrations))
		}
		for i := version; i < len(migrations); i++ {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return fmt.Errorf("storage: migration %d: %w", i+1, err)
			}
		}
		if version < len(migrations) {
			// PRAGMA takes no parameters; the value is our own integer.
			if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, len(migrations))); err != nil {
				return fmt.Errorf("storage: schema version: %w", err)
			}
		}
		return nil
	})
}

func (s *Store) loadHostID(ctx context.Context) (string, error) {
	id, err := s.Meta(ctx, "host", func() (string, error) { return uuid.NewString(), nil })
	if err != nil {
		return "", fmt.Errorf("storage: host id: %w", err)
	}
	return id, nil
}

// Meta returns the value recorded under key, first recording the value
// init gives when there is none: a setting made once for the life of DATA
// (the host id, the Hearth instance and its window of host ids).
func (s *Store) Meta(ctx context.Context, key string, init func() (string, error)) (string, error) {
	var value string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&value)
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if value, err = init(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)`, key, value)
		return err
	})
	return value, err
}

// SetMeta records value under key, replacing what was.
func (s *Store) SetMeta(ctx context.Context, key, value string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
		return err
	})
}

// sqliteFull is SQLITE_FULL: the disk holding the database is full.
const sqliteFull = 13

// isFull reports whether err says the data disk is full (or the quota spent).
func isFull(err error) bool {
	var se *sqlite.Error
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) ||
		errors.As(err, &se) && se.Code()&0xff == sqliteFull
}

// errFull is what a full data disk becomes: ErrFull, naming what could not
// be written but not the host's paths.
func errFull(what string) error {
	return fmt.Errorf("%s: no space left on the data disk: %w", what, ErrFull)
}

// tx runs fn in a write transaction (BEGIN IMMEDIATE), committing when fn
// returns nil and rolling back otherwise. A full disk is ErrFull.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) (err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: begin: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
			if isFull(err) && !errors.Is(err, ErrFull) {
				err = errFull("database")
			}
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("storage: commit: %w", err)
	}
	return nil
}

// Event is one entry of the audit log of state changes.
type Event struct {
	Time    time.Time
	Object  string // UUID (or address) of the object concerned
	Kind    string // e.g. "server.status", "drive.create"
	Message string
}

func (s *Store) event(ctx context.Context, tx *sql.Tx, object, kind, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if who, ok := ctx.Value(actorKey{}).(string); ok && who != "" {
		msg += " — by " + who
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO events (time, object, kind, message) VALUES (?, ?, ?, ?)`,
		s.now().UnixNano(), object, kind, msg)
	return err
}

type actorKey struct{}

// WithActor returns ctx naming who asked for the changes made with it: the
// events they record say "— by who". Changes Hearth makes by itself (a
// guest's exit, a kill at the end of a grace period) carry no actor.
func WithActor(ctx context.Context, who string) context.Context {
	return context.WithValue(ctx, actorKey{}, who)
}

// Record adds an event that goes with no other change: a request, or
// something a guest did.
func (s *Store) Record(ctx context.Context, object, kind, message string) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return s.event(ctx, tx, object, kind, "%s", message) })
}

// Events returns the latest events, newest first: of one object, or of all
// when object is empty.
func (s *Store) Events(ctx context.Context, object string, limit int) ([]Event, error) {
	q := `SELECT time, object, kind, message FROM events`
	args := []any{}
	if object != "" {
		q += ` WHERE object = ?`
		args = append(args, object)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("storage: events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var t int64
		if err := rows.Scan(&t, &e.Object, &e.Kind, &e.Message); err != nil {
			return nil, err
		}
		e.Time = time.Unix(0, t)
		out = append(out, e)
	}
	return out, rows.Err()
}

// queryAll runs a listing query and scans every row with scan; what names the
// listing in errors.
func queryAll[T any](ctx context.Context, db *sql.DB, what, q string, scan func(interface{ Scan(...any) error }) (T, error), args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("storage: %s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
