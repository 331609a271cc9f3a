package pgdelta

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// A resumed bulk copy reads the source in a new snapshot. Tables it
// finished in an earlier run are from an older one: mixed, the target can
// violate a foreign key (a child row read in the new snapshot whose parent
// was inserted after the old one) and its build fails. With change capture
// installed, the copy brings those tables forward instead: CatchUp applies
// to them the logged changes visible in the new snapshot and not in the
// old one, so the whole copy is of one snapshot.
//
// It runs in one target transaction that also records the step in
// kwickmig.copy_catchup, so a crash right after it cannot apply it twice:
// the resumed copy follows these records (CatchUps) from the snapshot its
// checkpoint knows to the one the data is at.

const catchUpDDL = `CREATE TABLE IF NOT EXISTS kwickmig.copy_catchup (
	schema_name   text NOT NULL,
	table_name    text NOT NULL,
	from_snapshot text NOT NULL,
	to_snapshot   text NOT NULL,
	PRIMARY KEY (schema_name, table_name, from_snapshot)
)`

// CatchUpStep is one recorded catch-up of one table (the top of a
// partition tree).
type CatchUpStep struct {
	Table    [2]string
	From, To string
}

// CatchUps returns the target's recorded catch-ups (none on a target that
// never had one).
func CatchUps(ctx context.Context, target *pgx.Conn) ([]CatchUpStep, error) {
	var exists bool
	if err := target.QueryRow(ctx, `SELECT to_regclass('kwickmig.copy_catchup') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	if !exists {
		return nil, nil
	}
	rows, _ := target.Query(ctx, `SELECT schema_name, table_name, from_snapshot, to_snapshot FROM kwickmig.copy_catchup`)
	steps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (CatchUpStep, error) {
		var s CatchUpStep
		return s, r.Scan(&s.Table[0], &s.Table[1], &s.From, &s.To)
	})
	if err != nil {
		return nil, fmt.Errorf("target: read kwickmig.copy_catchup: %w", err)
	}
	return steps, nil
}

// CatchUp applies to tables (captured tables: schema, name) on the target
// the changes logged on the source that are visible in snapshot to and not
// in from, in one transaction, and records that they are at to. Tables not
// under capture are returned: their changes are not in the log. It returns
// the number of changes applied.
func CatchUp(ctx context.Context, source, target *pgx.Conn, from, to string, tables [][2]string, opts Options) (int64, [][2]string, error) {
	opts.fill()
	for _, s := range []string{from, to} {
		if _, err := parseSnapshot(s); err != nil {
			return 0, nil, fmt.Errorf("catch up: %w", err)
		}
	}
	// Not checkSourceSchema: a table created after install is final-delta's
	// concern, not a reason to fail a copy at its end; the tables caught up
	// are checked against the target below.
	caps, err := capturedTables(ctx, source)
	if err != nil {
		return 0, nil, err
	}
	want := map[[2]string]bool{}
	for _, t := range tables {
		want[t] = true
	}
	var mine []captured
	for _, c := range caps {
		if want[[2]string{c.Schema, c.Name}] {
			mine = append(mine, c)
			delete(want, [2]string{c.Schema, c.Name})
		}
	}
	var uncaptured [][2]string
	for _, t := range tables {
		if want[t] {
			uncaptured = append(uncaptured, t)
		}
	}
	if len(mine) == 0 {
		return 0, uncaptured, nil
	}
	infos, err := prepareTargetTables(ctx, source, target, mine)
	if err != nil {
		return 0, nil, err
	}
	if err := ensureTarget(ctx, target); err != nil {
		return 0, nil, err
	}
	replica, err := setupTarget(ctx, target, opts.LockTimeout)
	if err != nil {
		return 0, nil, err
	}
	a := &applier{tables: infos, lw: newLockWatch(target, opts.LockTimeout), restricted: !replica}
	var n int64
	err = pgx.BeginFunc(ctx, target, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, catchUpDDL); err != nil {
			return fmt.Errorf("target: create kwickmig.copy_catchup: %w", err)
		}
		err := scanRound(ctx, source, from, to, 0, opts.BatchRows, func(rows []logRow) error {
			var keep []logRow
			for _, r := range rows {
				if infos[r.TID] != nil {
					keep = append(keep, r)
				}
			}
			n += int64(len(keep))
			return a.apply(ctx, tx, keep)
		})
		if err != nil {
			return err
		}
		for _, c := range mine {
			if _, err := tx.Exec(ctx, `INSERT INTO kwickmig.copy_catchup VALUES ($1, $2, $3, $4)
				ON CONFLICT (schema_name, table_name, from_snapshot) DO UPDATE SET to_snapshot = EXCLUDED.to_snapshot`,
				c.Schema, c.Name, from, to); err != nil {
				return fmt.Errorf("target: record catch-up of %s: %w", c.display(), err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("catch up tables finished in an earlier run: %w", err)
	}
	if !replica {
		if _, err := validatePending(ctx, target); err != nil {
			return n, nil, err
		}
	}
	return n, uncaptured, nil
}
