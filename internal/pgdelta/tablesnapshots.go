package pgdelta

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// A resumed bulk copy reloads, in a new snapshot, the tables the crashed
// run left unfinished (pgcopy/resume.go); the tables it finished stay from
// the first run's snapshot, the baseline (round 0). The target records the
// later snapshot of each such table (the top of a partition tree: what the
// log names), and every round skips a change to it that this snapshot
// already holds. Without it a round would apply those changes a second
// time: harmless for an upsert, wrong for a table without a key and for an
// exact row count.

const tableSnapshotsDDL = `CREATE TABLE IF NOT EXISTS kwickmig.table_snapshots (
	schema_name text NOT NULL,
	table_name  text NOT NULL,
	snapshot    text NOT NULL,
	PRIMARY KEY (schema_name, table_name)
)`

// RecordTableSnapshots replaces the target's per-table snapshots with
// tables (schema, name → pg_snapshot text). Call it before RecordBaseline,
// so that a baseline never exists without them. Once a delta round has been
// applied they are left alone (RecordBaseline then refuses a new copy).
func RecordTableSnapshots(ctx context.Context, target *pgx.Conn, tables map[[2]string]string) error {
	for _, s := range tables {
		if _, err := parseSnapshot(s); err != nil {
			return fmt.Errorf("record table snapshots: %w", err)
		}
	}
	if err := ensureTarget(ctx, target); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, target, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, tableSnapshotsDDL); err != nil {
			return fmt.Errorf("target: create kwickmig.table_snapshots: %w", err)
		}
		var later bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM kwickmig.rounds WHERE round > 0)
			OR EXISTS (SELECT 1 FROM kwickmig.batches)`).Scan(&later); err != nil {
			return fmt.Errorf("target: read delta rounds: %w", err)
		}
		if later {
			return nil
		}
		if _, err := tx.Exec(ctx, `DELETE FROM kwickmig.table_snapshots`); err != nil {
			return fmt.Errorf("target: record table snapshots: %w", err)
		}
		for k, s := range tables {
			if _, err := tx.Exec(ctx, `INSERT INTO kwickmig.table_snapshots VALUES ($1, $2, $3)`, k[0], k[1], s); err != nil {
				return fmt.Errorf("target: record table snapshots: %w", err)
			}
		}
		return nil
	})
}

// tableSnapshots reads the per-table snapshots (none on a target copied
// without a resume, or by an older kwickmig).
func tableSnapshots(ctx context.Context, tx pgx.Tx) (map[[2]string]snapshot, error) {
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass('kwickmig.table_snapshots') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	if !exists {
		return nil, nil
	}
	rows, _ := tx.Query(ctx, `SELECT schema_name, table_name, snapshot FROM kwickmig.table_snapshots`)
	out := map[[2]string]snapshot{}
	var s, n, text string
	_, err := pgx.ForEachRow(rows, []any{&s, &n, &text}, func() error {
		sn, err := parseSnapshot(text)
		out[[2]string{s, n}] = sn
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("target: read kwickmig.table_snapshots: %w", err)
	}
	return out, nil
}

// beforeApply runs in each apply transaction before its changes: it drops
// the changes a resumed copy's later snapshot holds already, and records
// the tables the rest change (for their materialized views).
func (a *applier) beforeApply(ctx context.Context, tx pgx.Tx, rows []logRow) ([]logRow, error) {
	rows, err := a.skipCopied(ctx, tx, rows)
	if err != nil {
		return nil, err
	}
	return rows, a.markChanged(ctx, tx, rows)
}

// skipCopied drops the log rows of tables a resumed copy loaded in a later
// snapshot that already holds them. rows is not modified.
func (a *applier) skipCopied(ctx context.Context, tx pgx.Tx, rows []logRow) ([]logRow, error) {
	if len(rows) == 0 {
		return rows, nil
	}
	snaps, err := tableSnapshots(ctx, tx)
	if err != nil || len(snaps) == 0 {
		return rows, err
	}
	out := make([]logRow, 0, len(rows))
	for _, r := range rows {
		if info := a.tables[r.TID]; info != nil {
			if sn, ok := snaps[[2]string{info.Schema, info.Name}]; ok && sn.visible(r.Txid) {
				continue
			}
		}
		out = append(out, r)
	}
	return out, nil
}
