package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// IDSlot returns the server's slot of host ids: the index of the block of
// 65,536 user and group ids its guest's user namespace maps to, disjoint from
// every other server's. The lowest free slot is taken on first use and kept
// for the server's life (across restarts and re-adoption, so files its guest
// created keep their owners); it is freed when the server is destroyed.
func (s *Store) IDSlot(ctx context.Context, server string) (int, error) {
	var slot int
	err := s.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT slot FROM idslots WHERE server = ?`, server).Scan(&slot)
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		// The lowest slot not taken: 0 when 0 is free, else one past a
		// taken slot whose successor is free.
		if err := tx.QueryRowContext(ctx, `
			SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM idslots WHERE slot = 0) THEN 0
			ELSE (SELECT MIN(a.slot) + 1 FROM idslots a
				WHERE NOT EXISTS (SELECT 1 FROM idslots b WHERE b.slot = a.slot + 1)) END`).Scan(&slot); err != nil {
			return fmt.Errorf("storage: free id slot: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO idslots (server, slot) VALUES (?, ?)`, server, slot); err != nil {
			if strings.Contains(err.Error(), "FOREIGN KEY") {
				return fmt.Errorf("server %s: %w", server, ErrNotFound)
			}
			return fmt.Errorf("storage: id slot: %w", err)
		}
		return nil
	})
	return slot, err
}
