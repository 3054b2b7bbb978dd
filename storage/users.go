package storage

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// User is an account. Its secret is never stored, only its SHA-256: secrets
// are 256 random bits, so a fast hash is as safe as a slow one and keeps an
// authentication check in the microseconds.
type User struct {
	ID      string
	Name    string
	Admin   bool
	Created time.Time
}

// CreateUser adds a user and returns it with its secret, which is shown once
// and never again. Names are unique, non-empty, printable words that do not
// look like a UUID (logins accept either).
func (s *Store) CreateUser(ctx context.Context, name string, admin bool) (User, string, error) {
	if err := checkUserName(name); err != nil {
		return User{}, "", err
	}
	secret, sum := newSecret()
	u := User{ID: uuid.NewString(), Name: name, Admin: admin, Created: s.now()}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE name = ?`, name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%q: %w", name, ErrExists)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO users (id, name, secret_sha256, admin, created) VALUES (?, ?, ?, ?, ?)`,
			u.ID, u.Name, sum[:], admin, u.Created.Unix()); err != nil {
			return err
		}
		return s.event(ctx, tx, u.ID, "user.create", "user %s created (admin %t)", name, admin)
	})
	if err != nil {
		return User{}, "", err
	}
	return u, secret, nil
}

// newSecret returns a random secret (256 bits, hex) and the hash kept of it.
func newSecret() (string, [sha256.Size]byte) {
	raw := make([]byte, 32)
	rand.Read(raw)
	secret := hex.EncodeToString(raw)
	return secret, sha256.Sum256([]byte(secret))
}

func checkUserName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("must not be empty: %w", ErrInvalid)
	case len(name) > 64:
		return fmt.Errorf("%q is longer than 64 characters: %w", name, ErrInvalid)
	case strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == ':' || r == 0x7f }):
		return fmt.Errorf("%q: a user name has no spaces, colons or control characters: %w", name, ErrInvalid)
	}
	if _, err := uuid.Parse(name); err == nil {
		return fmt.Errorf("%q looks like a UUID: logins take either, so a name must not be one: %w", name, ErrInvalid)
	}
	return nil
}

// loginTTL is how long a successful authentication is remembered: API
// clients authenticate on every request, and the cache keeps that off the
// database. A user removed by another process stays valid this long at most;
// DeleteUser in this process forgets at once.
const loginTTL = 5 * time.Second

type loginEntry struct {
	user  User
	sum   [sha256.Size]byte
	until time.Time
}

// Authenticate checks a login (user UUID or name) and secret. Any failure is
// ErrAuth, without saying which part was wrong. Secrets are compared as
// SHA-256 sums in constant time; failures are never cached.
func (s *Store) Authenticate(ctx context.Context, login, secret string) (User, error) {
	sum := sha256.Sum256([]byte(secret))
	now := s.now()
	if v, ok := s.logins.Load(login); ok {
		e := v.(loginEntry)
		if now.Before(e.until) && subtle.ConstantTimeCompare(e.sum[:], sum[:]) == 1 {
			return e.user, nil
		}
	}
	var u User
	var stored []byte
	var created int64
	err := s.queryRow(ctx, `SELECT id, name, admin, created, secret_sha256 FROM users WHERE id = ? OR name = ?`,
		strings.ToLower(login), login).Scan(&u.ID, &u.Name, &u.Admin, &created, &stored)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrAuth
	}
	if err != nil {
		return User{}, fmt.Errorf("storage: authenticate: %w", err)
	}
	if subtle.ConstantTimeCompare(sum[:], stored) != 1 {
		return User{}, ErrAuth
	}
	u.Created = time.Unix(created, 0)
	s.logins.Store(login, loginEntry{user: u, sum: sum, until: now.Add(loginTTL)})
	return u, nil
}

// User returns one user by UUID.
func (s *Store) User(ctx context.Context, id string) (User, error) {
	var u User
	var created int64
	err := s.queryRow(ctx, `SELECT id, name, admin, created FROM users WHERE id = ?`, id).
		Scan(&u.ID, &u.Name, &u.Admin, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("user %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("storage: user: %w", err)
	}
	u.Created = time.Unix(created, 0)
	return u, nil
}

// FindUser returns a user by UUID or name (logins accept either).
func (s *Store) FindUser(ctx context.Context, login string) (User, error) {
	var id string
	err := s.queryRow(ctx, `SELECT id FROM users WHERE id = ? OR name = ?`, strings.ToLower(login), login).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("user %s: %w", login, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("storage: user: %w", err)
	}
	return s.User(ctx, id)
}

// Users lists every user, oldest first.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, admin, created FROM users ORDER BY rowid`)
	if err != nil {
		return nil, fmt.Errorf("storage: users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		var u User
		var created int64
		if err := rows.Scan(&u.ID, &u.Name, &u.Admin, &created); err != nil {
			return nil, err
		}
		u.Created = time.Unix(created, 0)
		out = append(out, u)
	}
	return out, rows.Err()
}

// FirstAdmin returns the oldest admin, the owner of library drives made by
// `hearth image import`.
func (s *Store) FirstAdmin(ctx context.Context) (User, error) {
	var id string
	err := s.db.QueryRowContext(ctx, `SELECT id FROM users WHERE admin ORDER BY rowid LIMIT 1`).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("admin user: %w", ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("storage: admin: %w", err)
	}
	return s.User(ctx, id)
}

// DeleteUser removes a user that owns nothing; one that still owns servers,
// drives or resources is ErrBusy saying how many.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var name string
		err := tx.QueryRowContext(ctx, `SELECT name FROM users WHERE id = ?`, id).Scan(&name)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("user %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		var servers, drives, resources int
		if err := tx.QueryRowContext(ctx, `SELECT
			(SELECT count(*) FROM servers WHERE owner = ?1),
			(SELECT count(*) FROM drives WHERE owner = ?1),
			(SELECT count(*) FROM resources WHERE owner = ?1)`, id).Scan(&servers, &drives, &resources); err != nil {
			return err
		}
		if servers+drives+resources > 0 {
			return fmt.Errorf("user %s still owns %d servers, %d drives and %d resources: %w", name, servers, drives, resources, ErrBusy)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, id); err != nil {
			return fmt.Errorf("storage: delete user: %w", err)
		}
		return s.event(ctx, tx, id, "user.destroy", "user %s removed", name)
	})
	if err == nil {
		s.logins.Clear()
	}
	return err
}
