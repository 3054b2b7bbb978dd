package storage

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// SampleTier is one resolution of a server's activity history: a row per
// Step, kept for Keep, so at most Rows rows per server.
type SampleTier struct {
	Step, Keep time.Duration
}

// Rows is the tier's row budget per server.
func (t SampleTier) Rows() int { return int(t.Keep / t.Step) }

// SampleTiers are the resolutions kept: the first holds what the sampler
// records (one row per 10 s for the last hour); each later one the averages
// of the previous tier's rows within its step (5 minutes, for a day). A
// server costs at most 360+288 rows, whatever its age.
var SampleTiers = [...]SampleTier{
	{Step: 10 * time.Second, Keep: time.Hour},
	{Step: 5 * time.Minute, Keep: 24 * time.Hour},
}

// Sample is a server's activity over one step of a tier, as rates: what its
// counters grew by, divided by the seconds the reading covers.
type Sample struct {
	Time time.Time // start of the step (the sampler's reading, rounded down to it)
	// Usage tells whether CPU and Memory were reported: CPU is nanoseconds
	// of CPU time per second (1e9: one core busy), Memory bytes in use.
	Usage       bool
	CPU, Memory float64
	// Bytes per second through the server's NICs and drives.
	Rx, Tx, Read, Write float64
}

// ServerSample is one server's reading, for RecordSamples.
type ServerSample struct {
	Server string
	Sample
}

// RecordSamples stores readings in the first tier (a second reading within
// the same step replaces the first), refreshes the coarser tiers' averages
// of the steps they fall in and prunes each tier to its window and row
// budget. A reading of a server that no longer exists is dropped.
func (s *Store) RecordSamples(ctx context.Context, readings []ServerSample) error {
	if len(readings) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, r := range readings {
			if err := recordSample(ctx, tx, r); err != nil {
				return fmt.Errorf("storage: record sample of %s: %w", r.Server, err)
			}
		}
		return nil
	})
}

func recordSample(ctx context.Context, tx *sql.Tx, r ServerSample) error {
	var cpu, mem sql.NullFloat64
	if r.Usage {
		cpu, mem = sql.NullFloat64{Float64: r.CPU, Valid: true}, sql.NullFloat64{Float64: r.Memory, Valid: true}
	}
	at := r.Time.Unix()
	first := SampleTiers[0]
	res, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO samples (server, tier, time, cpu, memory, rx, tx, read, write)
		SELECT ?1, 0, ?2, ?3, ?4, ?5, ?6, ?7, ?8 WHERE EXISTS (SELECT 1 FROM servers WHERE id = ?1)`,
		r.Server, floorTo(at, first.Step), cpu, mem, r.Rx, r.Tx, r.Read, r.Write)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil // destroyed meanwhile
	}
	for i, t := range SampleTiers {
		bucket := floorTo(at, t.Step)
		if i > 0 {
			if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO samples (server, tier, time, cpu, memory, rx, tx, read, write)
				SELECT server, ?2, ?3, avg(cpu), avg(memory), avg(rx), avg(tx), avg(read), avg(write)
				FROM samples WHERE server = ?1 AND tier = ?4 AND time >= ?3 AND time < ?5 GROUP BY server`,
				r.Server, i, bucket, i-1, bucket+int64(t.Step/time.Second)); err != nil {
				return err
			}
		}
		// The window ends at the current step; the budget holds even when
		// the clock jumps back and rows lie ahead of it.
		if _, err := tx.ExecContext(ctx, `DELETE FROM samples WHERE server = ?1 AND tier = ?2 AND (time <= ?3 OR time <= coalesce(
				(SELECT time FROM samples WHERE server = ?1 AND tier = ?2 ORDER BY time DESC LIMIT 1 OFFSET ?4), -1))`,
			r.Server, i, bucket-int64(t.Keep/time.Second), t.Rows()); err != nil {
			return err
		}
	}
	return nil
}

// PruneSamples removes the rows every tier's window has left behind as of
// now: those of servers no longer sampled (stopped for longer than a day).
func (s *Store) PruneSamples(ctx context.Context, now time.Time) error {
	for i, t := range SampleTiers {
		if _, err := s.db.ExecContext(ctx, `DELETE FROM samples WHERE tier = ? AND time <= ?`,
			i, floorTo(now.Unix(), t.Step)-int64(t.Keep/time.Second)); err != nil {
			return fmt.Errorf("storage: prune samples: %w", err)
		}
	}
	return nil
}

// Samples returns a server's rows of one tier from since on, oldest first.
func (s *Store) Samples(ctx context.Context, server string, tier int, since time.Time) ([]Sample, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT time, cpu, memory, rx, tx, read, write FROM samples
		WHERE server = ? AND tier = ? AND time >= ? ORDER BY time`, server, tier, since.Unix())
	if err != nil {
		return nil, fmt.Errorf("storage: samples: %w", err)
	}
	defer rows.Close()
	var out []Sample
	for rows.Next() {
		var smp Sample
		var at int64
		var cpu, mem sql.NullFloat64
		if err := rows.Scan(&at, &cpu, &mem, &smp.Rx, &smp.Tx, &smp.Read, &smp.Write); err != nil {
			return nil, fmt.Errorf("storage: samples: %w", err)
		}
		smp.Time = time.Unix(at, 0)
		smp.Usage = cpu.Valid && mem.Valid
		smp.CPU, smp.Memory = cpu.Float64, mem.Float64
		out = append(out, smp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: samples: %w", err)
	}
	return out, nil
}

// floorTo rounds a Unix time down to a multiple of step.
func floorTo(unix int64, step time.Duration) int64 {
	sec := int64(step / time.Second)
	return unix - ((unix%sec)+sec)%sec
}
