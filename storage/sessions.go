package storage

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Session is a dashboard login: whose it is, the token its forms carry
// against cross-site requests, and when it was last used (to the minute:
// see TouchSession).
type Session struct {
	User     string
	CSRF     string
	LastSeen time.Time
}

func sessionKey(id string) []byte {
	sum := sha256.Sum256([]byte(id))
	return sum[:]
}

// CreateSession records a session of user under id (a random token the
// browser keeps; only its hash is stored).
func (s *Store) CreateSession(ctx context.Context, id string, sess Session) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO sessions (id_sha256, user, csrf, last_seen) VALUES (?, ?, ?, ?)`,
		sessionKey(id), sess.User, sess.CSRF, sess.LastSeen.Unix())
	if err != nil {
		return fmt.Errorf("storage: create session: %w", err)
	}
	return nil
}

// Session returns the session with id; an unknown one is ErrNotFound.
func (s *Store) Session(ctx context.Context, id string) (Session, error) {
	var sess Session
	var lastSeen int64
	err := s.queryRow(ctx, `SELECT user, csrf, last_seen FROM sessions WHERE id_sha256 = ?`, sessionKey(id)).
		Scan(&sess.User, &sess.CSRF, &lastSeen)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, fmt.Errorf("session: %w", ErrNotFound)
	}
	if err != nil {
		return Session{}, fmt.Errorf("storage: session: %w", err)
	}
	sess.LastSeen = time.Unix(lastSeen, 0)
	return sess, nil
}

// TouchSession records that the session was used at now. Only a minute's
// news is written: a page view costs no database write.
func (s *Store) TouchSession(ctx context.Context, id string, now time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE sessions SET last_seen = ?2 WHERE id_sha256 = ?1 AND last_seen < ?2 - 60`,
		sessionKey(id), now.Unix())
	if err != nil {
		return fmt.Errorf("storage: touch session: %w", err)
	}
	return nil
}

// DeleteSession ends a session (logout); an unknown one is not an error.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE id_sha256 = ?`, sessionKey(id)); err != nil {
		return fmt.Errorf("storage: delete session: %w", err)
	}
	return nil
}

// DeleteIdleSessions ends the sessions not used since before.
func (s *Store) DeleteIdleSessions(ctx context.Context, before time.Time) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE last_seen < ?`, before.Unix()); err != nil {
		return fmt.Errorf("storage: delete idle sessions: %w", err)
	}
	return nil
}

// RotateSecret gives the user named by login (UUID or name) a new secret
// and returns it; the old one stops working at once (in a Hearth serving
// beside this process, within loginTTL), and so do the user's dashboard
// sessions.
func (s *Store) RotateSecret(ctx context.Context, login string) (User, string, error) {
	u, err := s.FindUser(ctx, login)
	if err != nil {
		return User{}, "", err
	}
	secret, sum := newSecret()
	err = s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET secret_sha256 = ? WHERE id = ?`, sum[:], u.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("user %s: %w", login, ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user = ?`, u.ID); err != nil {
			return err
		}
		return s.event(ctx, tx, u.ID, "user.secret", "user %s was given a new secret; its sessions ended", u.Name)
	})
	if err != nil {
		return User{}, "", err
	}
	s.logins.Clear() // another process's cache ages out within loginTTL
	return u, secret, nil
}
