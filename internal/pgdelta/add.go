package pgdelta

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/pgcatalog"
)

// AddOptions tune capture add.
type AddOptions struct {
	// AllowNoKey captures tables without a usable key (see InstallOptions).
	AllowNoKey bool
	// LockTimeout bounds the wait for each table's lock. Zero means 10 s.
	LockTimeout time.Duration
	// DumpDDL returns the schema of tables ({schema, name} pairs, the tables
	// and the sequences they own) as read in the exported snapshot
	// snapshotID (pg_dump --snapshot; see pgcopy.TableDDL).
	DumpDDL func(ctx context.Context, snapshotID string, tables [][2]string) (string, error)
}

// AddResult is what capture add did.
type AddResult struct {
	Added   []string `json:"added"`
	Already []string `json:"already_captured,omitempty"`
	Rows    int64    `json:"rows_logged"`
}

// AddTables brings tables created after install under capture, each in the
// same source transaction: it locks them against writers and schema
// changes, reads their schema (for the target) in its snapshot, creates
// their capture triggers and logs every row they hold as an insert. The next
// delta round (final-delta, or an export and its import-delta) creates them
// on the target and applies those inserts, then later rounds carry their
// changes, as for any captured table.
func AddTables(ctx context.Context, source *pgx.Conn, names []string, opts AddOptions) (AddResult, error) {
	var res AddResult
	ok, err := CaptureInstalled(ctx, source)
	if err != nil {
		return res, err
	}
	if !ok {
		return res, fmt.Errorf("source: %w (run kwickmig db capture install first)", ErrNoCapture)
	}
	if opts.DumpDDL == nil {
		return res, errors.New("capture add: no schema dumper")
	}
	lt := opts.LockTimeout
	if lt == 0 {
		lt = 10 * time.Second
	}
	role, err := captureRole(ctx, source)
	if err != nil {
		return res, err
	}
	todo, already, err := resolveAdd(ctx, source, names)
	if err != nil {
		return res, err
	}
	res.Already = already
	if len(todo) == 0 {
		return res, nil
	}
	if _, err := source.Exec(ctx, `ALTER TABLE kwickmig.tables ADD COLUMN IF NOT EXISTS ddl text`); err != nil {
		return res, fmt.Errorf("source: %w", err)
	}
	if err := ensurePartitionRecord(ctx, source); err != nil {
		return res, err
	}
	// As install chose (an install by an older kwickmig: by row).
	var by string
	if err := source.QueryRow(ctx, `SELECT coalesce((SELECT value FROM kwickmig.meta WHERE key = 'capture_by'), '')`).Scan(&by); err != nil {
		return res, fmt.Errorf("source: read capture install: %w", err)
	}
	byStatement := by == captureBy(true)
	err = pgx.BeginTxFunc(ctx, source, pgx.TxOptions{IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", lt.Milliseconds())); err != nil {
			return err
		}
		// Locked before the snapshot is taken (LOCK takes none): the
		// snapshot sees every row the tables will ever have had unlogged.
		for _, t := range todo {
			if _, err := tx.Exec(ctx, "LOCK TABLE "+t.qname()+" IN SHARE ROW EXCLUSIVE MODE"); err != nil {
				if isLockTimeout(err) {
					return fmt.Errorf("could not lock %s within %s (transactions are writing to it); nothing was added: retry at a quieter moment or raise --lock-timeout", t.display(), lt)
				}
				return fmt.Errorf("lock %s: %w", t.display(), err)
			}
		}
		var snap string
		if err := tx.QueryRow(ctx, `SELECT pg_export_snapshot()`).Scan(&snap); err != nil {
			return fmt.Errorf("export snapshot: %w", err)
		}
		// Keys and fingerprints again, now that nothing can change them.
		all, err := listTables(ctx, tx.Conn())
		if err != nil {
			return err
		}
		byOID := map[uint32]table{}
		for _, t := range all {
			byOID[t.OID] = t
		}
		var noKey []table
		for i, t := range todo {
			now, ok := byOID[t.OID]
			if !ok {
				return fmt.Errorf("%s was dropped or became a partition meanwhile; nothing was added", t.display())
			}
			todo[i] = now
			if now.Key == nil && !opts.AllowNoKey {
				noKey = append(noKey, now)
			}
		}
		if len(noKey) > 0 {
			return fmt.Errorf("%d %w: %s (add a primary key, or capture them with --allow-no-key); nothing was added",
				len(noKey), ErrNoKey, strings.Join(sortedNames(noKey), ", "))
		}
		var maxTID int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(tid), 0) FROM kwickmig.tables`).Scan(&maxTID); err != nil {
			return err
		}
		for _, s := range []string{"SET LOCAL extra_float_digits = 1", "SET LOCAL datestyle = ISO", "SET LOCAL timezone = UTC",
			"SET LOCAL intervalstyle = postgres", "SET LOCAL bytea_output = hex"} {
			if _, err := tx.Exec(ctx, s); err != nil {
				return err
			}
		}
		for i, t := range todo {
			tid := maxTID + 1 + i
			if t.Key == nil {
				t.Key = []string{}
			}
			seqs, err := ownedSequences(ctx, tx, t)
			if err != nil {
				return err
			}
			ddl, err := opts.DumpDDL(ctx, snap, append([][2]string{{t.Schema, t.Name}}, seqs...))
			if err != nil {
				return err
			}
			logged, err := loggedColumns(ctx, tx.Conn(), t)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO kwickmig.tables (tid, relid, schema_name, table_name, key_cols, cols, fingerprint, ddl)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, tid, t.OID, t.Schema, t.Name, t.Key, logged, t.Fingerprint, ddl); err != nil {
				return err
			}
			forms, err := textForms(ctx, tx.Conn(), t.OID)
			if err != nil {
				return fmt.Errorf("%s: %w", t.display(), err)
			}
			stmts, err := captureSQL(ctx, tx.Conn(), tid, t, logged, forms, role, byStatement) // stmtcapture.go
			if err != nil {
				return err
			}
			for _, stmt := range stmts {
				if _, err := tx.Exec(ctx, stmt); err != nil {
					return fmt.Errorf("install trigger on %s: %w", t.display(), err)
				}
			}
			if err := partitionTruncateTriggers(ctx, tx, tid, t); err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO kwickmig.log (tid, op, key, data) SELECT %d, 'I', %s, %s FROM %s AS p`,
				tid, textArrayOf(forms, "p", t.Key), textArrayOf(forms, "p", logged), t.qname()))
			if err != nil {
				return fmt.Errorf("log the rows of %s: %w", t.display(), err)
			}
			res.Rows += tag.RowsAffected()
			res.Added = append(res.Added, t.display())
		}
		// The added tables' partitions are known from now on (others'
		// new partitions are still the next delta run's to take over).
		parts, err := sourcePartitions(ctx, tx.Conn())
		if err != nil {
			return err
		}
		var mine []partitionDef
		for _, p := range parts {
			if int(p.TID) > maxTID {
				mine = append(mine, p)
			}
		}
		return recordPartitions(ctx, tx, mine)
	})
	if err != nil {
		return AddResult{Already: res.Already}, fmt.Errorf("source: capture add: %w", err)
	}
	return res, nil
}

// resolveAdd finds the tables named (package pgcatalog's rule) and splits off those captured already. Every name that
// matches no table, or several, is reported at once.
func resolveAdd(ctx context.Context, source *pgx.Conn, names []string) (todo []table, already []string, err error) {
	all, err := listTables(ctx, source)
	if err != nil {
		return nil, nil, fmt.Errorf("source: %w", err)
	}
	caps, err := capturedTables(ctx, source)
	if err != nil {
		return nil, nil, err
	}
	isCaptured := map[uint32]bool{}
	for _, c := range caps {
		isCaptured[c.OID] = true
	}
	var problems []string
	seen := map[uint32]bool{}
	cat := make([]pgcatalog.Name, len(all))
	for i, t := range all {
		cat[i] = pgcatalog.Name{Schema: t.Schema, Table: t.Name}
	}
	for _, n := range names {
		i, err := pgcatalog.Resolve(n, cat)
		var re *pgcatalog.ResolveError
		switch {
		case errors.As(err, &re) && len(re.Candidates) == 0:
			problems = append(problems, n+" (no such table on the source; partitions follow their parent by themselves)")
		case errors.As(err, &re):
			problems = append(problems, fmt.Sprintf("%s (%s)", n, re.Detail()))
		case err != nil:
			problems = append(problems, err.Error())
		case isCaptured[all[i].OID]:
			already = append(already, all[i].display())
		case !seen[all[i].OID]:
			seen[all[i].OID] = true
			todo = append(todo, all[i])
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, nil, fmt.Errorf("source: capture add: %s; nothing was added", strings.Join(problems, ", "))
	}
	return todo, already, nil
}

// ownedSequences lists the sequences a serial column of t owns (identity
// sequences are part of the table's own definition).
func ownedSequences(ctx context.Context, tx pgx.Tx, t table) ([][2]string, error) {
	rows, err := tx.Query(ctx, `SELECT n.nspname::text, s.relname::text FROM pg_catalog.pg_depend d
		JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
		JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
		WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
		  AND d.refobjid = $1 AND d.deptype = 'a'`, t.OID)
	if err != nil {
		return nil, fmt.Errorf("read sequences of %s: %w", t.display(), err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var s [2]string
		err := r.Scan(&s[0], &s[1])
		return s, err
	})
}

// captureRole is the capture role recorded at install (older installs:
// this database's role name).
func captureRole(ctx context.Context, source *pgx.Conn) (string, error) {
	var role string
	if err := source.QueryRow(ctx, `SELECT coalesce((SELECT value FROM kwickmig.meta WHERE key = 'capture_role'), '')`).Scan(&role); err != nil {
		return "", fmt.Errorf("source: read capture install: %w", err)
	}
	if role == "" {
		return "", errors.New("source: capture was installed by an older kwickmig without a capture role: remove and install it again to add tables")
	}
	return role, nil
}

// createAddedTables creates on the target, each in its own session (a
// pg_dump script changes session settings), the added tables it lacks.
func createAddedTables(ctx context.Context, target *pgx.Conn, caps []captured) error {
	for _, c := range caps {
		if c.DDL == "" {
			continue
		}
		var exists bool
		if err := target.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class r JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace
			WHERE n.nspname = $1 AND r.relname = $2)`, c.Schema, c.Name).Scan(&exists); err != nil {
			return fmt.Errorf("target: read %s: %w", c.display(), err)
		}
		if exists {
			continue
		}
		conn, err := pgx.ConnectConfig(ctx, target.Config())
		if err != nil {
			return fmt.Errorf("target: connect to create %s: %w", c.display(), err)
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, c.DDL)
			return err
		})
		conn.Close(context.WithoutCancel(ctx))
		if err != nil {
			return fmt.Errorf("target: create %s (added to capture after install): %w; nothing was applied", c.display(), err)
		}
	}
	return nil
}

// CreateAddedTables creates on the target the tables added to capture after
// install that it lacks (db capture add --target); final-delta and
// import-delta do the same before applying a round.
func CreateAddedTables(ctx context.Context, source, target *pgx.Conn) error {
	caps, err := capturedTables(ctx, source)
	if err != nil {
		return err
	}
	return createAddedTables(ctx, target, caps)
}
