package pgdelta

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Schema is the schema kwickmig owns on both sides: on the source it holds
// the change log, the captured-table list and the ticks; on the target the
// applied rounds and batches. The bulk copy must not copy it.
const Schema = "kwickmig"

// targetDDL creates the target's bookkeeping idempotently.
//
// rounds: one row per delta round; round 0 is the bulk copy's snapshot (the
// baseline). A round is applied in one or more target transactions; each one
// commits its changes together with last_log_id (direct mode) or a batches
// row (offline mode), so a crash loses nothing and repeats nothing.
var targetDDL = []string{
	`CREATE SCHEMA IF NOT EXISTS kwickmig`,
	`CREATE TABLE IF NOT EXISTS kwickmig.rounds (
		round        integer PRIMARY KEY,
		mode         text NOT NULL,             -- baseline | direct | offline
		snapshot     text NOT NULL,             -- the tick, pg_snapshot text from the source
		prev_snapshot text,
		last_log_id  bigint NOT NULL DEFAULT 0, -- direct: progress inside the round
		done         boolean NOT NULL DEFAULT false,
		rows_applied bigint NOT NULL DEFAULT 0,
		started_at   timestamptz NOT NULL DEFAULT now(),
		finished_at  timestamptz
	)`,
	`CREATE TABLE IF NOT EXISTS kwickmig.batches (
		round      integer NOT NULL,
		part       integer NOT NULL,
		file       text NOT NULL,
		sha256     text NOT NULL,
		rows       bigint NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now(),
		PRIMARY KEY (round, part)
	)`,
}

// ensureTarget creates the target's kwickmig schema and tables if missing.
func ensureTarget(ctx context.Context, target *pgx.Conn) error {
	// CREATE SCHEMA IF NOT EXISTS checks the database's CREATE privilege
	// even when the schema exists: a table owner without it (a restricted
	// migration role) must still be able to run every later round.
	var have bool
	if err := target.QueryRow(ctx, `SELECT to_regnamespace('kwickmig') IS NOT NULL`).Scan(&have); err != nil {
		return fmt.Errorf("target: read kwickmig bookkeeping: %w", err)
	}
	for _, ddl := range targetDDL {
		if have && strings.HasPrefix(ddl, "CREATE SCHEMA") {
			continue
		}
		if _, err := target.Exec(ctx, ddl); err != nil {
			return fmt.Errorf("target: create kwickmig bookkeeping: %w", err)
		}
	}
	return nil
}

// CaptureInstalled reports whether `kwickmig db capture install` has run on
// the source (its change log exists). The bulk copy calls it after loading to
// decide whether to record its snapshot with RecordBaseline.
func CaptureInstalled(ctx context.Context, source *pgx.Conn) (bool, error) {
	var ok bool
	err := source.QueryRow(ctx,
		`SELECT to_regclass('kwickmig.log') IS NOT NULL AND to_regclass('kwickmig.meta') IS NOT NULL`).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("source: check for change capture: %w", err)
	}
	return ok, nil
}

// ErrBaselineInUse is matched by RecordBaseline's error when the target
// already has delta rounds on top of a different baseline.
var ErrBaselineInUse = errors.New("target already has delta rounds applied on another baseline")

// RecordBaseline records on the target that everything visible in snapshot
// (pg_current_snapshot()::text read in the bulk copy's snapshot transaction on
// the source) is already in the target: round 0, the tick every delta round
// builds on. Call it only after all data has loaded. It is idempotent:
// recording the same snapshot again is a no-op; a different snapshot replaces
// it only while no delta round has been applied yet (a repeated bulk copy).
func RecordBaseline(ctx context.Context, target *pgx.Conn, snapshot string) error {
	if _, err := parseSnapshot(snapshot); err != nil {
		return fmt.Errorf("record baseline: %w", err)
	}
	if err := ensureTarget(ctx, target); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, target, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE kwickmig.rounds IN EXCLUSIVE MODE`); err != nil {
			return fmt.Errorf("target: lock kwickmig.rounds: %w", err)
		}
		var old string
		err := tx.QueryRow(ctx, `SELECT snapshot FROM kwickmig.rounds WHERE round = 0`).Scan(&old)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			_, err = tx.Exec(ctx, `INSERT INTO kwickmig.rounds (round, mode, snapshot, done, finished_at)
				VALUES (0, 'baseline', $1, true, now())`, snapshot)
			if err != nil {
				return fmt.Errorf("target: record baseline: %w", err)
			}
			return nil
		case err != nil:
			return fmt.Errorf("target: read baseline: %w", err)
		case old == snapshot:
			return nil
		}
		var later int
		err = tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM kwickmig.rounds WHERE round > 0)
			+ (SELECT count(*) FROM kwickmig.batches)`).Scan(&later)
		if err != nil {
			return fmt.Errorf("target: read delta rounds: %w", err)
		}
		if later > 0 {
			return fmt.Errorf("target: %w (baseline %s, new snapshot %s): start again with an empty target",
				ErrBaselineInUse, old, snapshot)
		}
		_, err = tx.Exec(ctx, `UPDATE kwickmig.rounds SET snapshot = $1, started_at = now(), finished_at = now()
			WHERE round = 0`, snapshot)
		if err != nil {
			return fmt.Errorf("target: record baseline: %w", err)
		}
		return nil
	})
}
