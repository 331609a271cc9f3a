package pgcopy

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/checkpoint"
)

// partState is a part's progress in the checkpoint. Xid is the target
// transaction loading it, recorded before the COPY starts: after a crash,
// pg_xact_status(Xid) on the target tells whether the part was committed,
// so a part is never loaded twice nor lost, without deleting anything.
type partState struct {
	Xid  int64 `json:"xid,omitempty"`
	Done bool  `json:"done,omitempty"`
	// Snapshot is the source snapshot (pg_current_snapshot text) the part
	// was read in: a resumed copy reads in a new one (resume.go).
	Snapshot string  `json:"snapshot,omitempty"`
	Rows     int64   `json:"rows"`
	Bytes    int64   `json:"bytes"`
	Seconds  float64 `json:"seconds"`
}

// loader loads parts into the target, one transaction per part.
type loader struct {
	ck      *checkpoint.DB
	section string
	// freeze loads whole tables as TRUNCATE + COPY … FREEZE in one
	// transaction: rows are written frozen (no later hint-bit or
	// anti-wraparound rewrite) and, on servers with wal_level = minimal,
	// without WAL. Only when kwickmig created the tables (not --data-only,
	// where foreign keys would refuse the TRUNCATE).
	freeze bool
	// snapshot is this run's source snapshot, recorded with each part.
	snapshot string
}

func (l *loader) put(p *Part) error {
	if err := l.ck.PutJSON(l.section, "part/"+p.Key(), p.state); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// load runs COPY FROM on dst reading r, inside a transaction whose id is
// recorded first. finish is called when COPY FROM returns, with its error;
// it returns the source's row count (or -1 if unknown) and an error of the
// reading side that takes precedence. Any error rolls the part back.
func (l *loader) load(ctx context.Context, dst *pgx.Conn, p *Part, r io.Reader, finish func(copyErr error) (int64, error)) (int64, error) {
	var xid string
	if _, err := dst.Exec(ctx, "BEGIN"); err != nil {
		return 0, fmt.Errorf("target: begin %s: %s", p, oneLine(err))
	}
	if err := dst.QueryRow(ctx, "SELECT pg_catalog.pg_current_xact_id()::text").Scan(&xid); err != nil {
		_, _ = dst.Exec(context.Background(), "ROLLBACK")
		return 0, fmt.Errorf("target: %s: %s", p, oneLine(err))
	}
	rollback := func() { _, _ = dst.Exec(context.Background(), "ROLLBACK") }
	n, _ := strconv.ParseInt(xid, 10, 64)
	p.state = partState{Xid: n, Snapshot: l.snapshot}
	if err := l.put(p); err != nil {
		rollback()
		return 0, err
	}
	freeze := l.freeze && p.Count == 1
	if freeze {
		if _, err := dst.Exec(ctx, "TRUNCATE ONLY "+p.Table.QName()); err != nil {
			rollback()
			return 0, fmt.Errorf("target: truncate %s: %s", p, oneLine(err))
		}
	}
	tag, copyErr := dst.PgConn().CopyFrom(ctx, r, p.targetSQL(freeze))
	srcRows, err := finish(copyErr)
	if err != nil {
		rollback()
		return 0, err
	}
	if copyErr != nil {
		rollback()
		return 0, fmt.Errorf("target: load %s: %s", p, oneLine(copyErr))
	}
	if srcRows >= 0 && srcRows != tag.RowsAffected() {
		rollback()
		return 0, fmt.Errorf("%s: source sent %d rows, target loaded %d", p, srcRows, tag.RowsAffected())
	}
	if _, err := dst.Exec(ctx, "COMMIT"); err != nil {
		return 0, fmt.Errorf("target: commit %s: %s", p, oneLine(err))
	}
	return tag.RowsAffected(), nil
}

// done records a committed part.
func (l *loader) done(p *Part, rows, bytes int64, d time.Duration) error {
	p.state = partState{Done: true, Rows: rows, Bytes: bytes, Seconds: d.Seconds(), Snapshot: l.snapshot}
	return l.put(p)
}

// reconcile reads the parts' states and settles parts a crashed run left
// in flight, by asking the target whether their transaction committed. A
// table with a part in an unknowable state is truncated and redone whole.
func (l *loader) reconcile(ctx context.Context, dst *pgx.Conn, tables []*Table, resume bool) error {
	if !resume {
		return nil
	}
	for _, t := range tables {
		redo := false
		for _, p := range t.Parts {
			p.state = partState{}
			if _, err := l.ck.GetJSON(l.section, "part/"+p.Key(), &p.state); err != nil {
				return fmt.Errorf("checkpoint: %w", err)
			}
			if p.state.Done || p.state.Xid == 0 {
				continue
			}
			var status *string
			err := dst.QueryRow(ctx, "SELECT pg_catalog.pg_xact_status($1::text::xid8)", strconv.FormatInt(p.state.Xid, 10)).Scan(&status)
			if err != nil {
				return fmt.Errorf("target: transaction status of %s: %s", p, oneLine(err))
			}
			switch {
			case status == nil:
				redo = true
			case *status == "committed":
				p.state = partState{Done: true, Rows: -1, Snapshot: p.state.Snapshot}
			case *status == "aborted":
				p.state = partState{}
			default:
				return fmt.Errorf("target: %s is still being loaded by transaction %d (another kwickmig run?): wait for it or end it", p, p.state.Xid)
			}
			if err := l.put(p); err != nil {
				return err
			}
		}
		if redo {
			if err := l.redo(ctx, dst, t); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkTargets runs before any data moves: every table must exist on the
// target with the same columns (names and types), and a table with no
// finished part must be empty, unless resume allows truncating it.
func checkTargets(ctx context.Context, dst *pgx.Conn, tables []*Table, resume bool) ([]string, error) {
	var truncated []string
	for _, t := range tables {
		if err := compareColumns(ctx, dst, t); err != nil {
			return nil, err
		}
		started := false
		for _, p := range t.Parts {
			started = started || p.state.Done
		}
		if started {
			continue
		}
		var nonEmpty bool
		if err := dst.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM ONLY "+t.QName()+")").Scan(&nonEmpty); err != nil {
			return nil, fmt.Errorf("target: read %s: %s", t.QName(), oneLine(err))
		}
		if !nonEmpty {
			continue
		}
		if !resume {
			return nil, fmt.Errorf("target: table %s is not empty: empty it, or use --resume to continue an earlier copy (its unfinished tables are truncated)", t.QName())
		}
		if _, err := dst.Exec(ctx, "TRUNCATE ONLY "+t.QName()); err != nil {
			return nil, fmt.Errorf("target: truncate half-loaded %s: %s", t.QName(), oneLine(err))
		}
		truncated = append(truncated, t.QName())
	}
	return truncated, nil
}

// compareColumns reports a target table whose copied columns differ.
func compareColumns(ctx context.Context, dst *pgx.Conn, t *Table) error {
	var exists bool
	if err := dst.QueryRow(ctx, "SELECT pg_catalog.to_regclass($1) IS NOT NULL", t.QName()).Scan(&exists); err != nil {
		return fmt.Errorf("target: %s", oneLine(err))
	}
	if !exists {
		return fmt.Errorf("target: table %s does not exist (with --data-only the schema must already be there)", t.QName())
	}
	rows, _ := dst.Query(ctx, `SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)
		FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
		ORDER BY a.attnum`, t.QName())
	target := map[string]string{}
	var name, typ string
	if _, err := pgx.ForEachRow(rows, []any{&name, &typ}, func() error {
		target[name] = typ
		return nil
	}); err != nil {
		return fmt.Errorf("target: columns of %s: %s", t.QName(), oneLine(err))
	}
	var diffs []string
	for _, c := range t.Columns {
		tt, ok := target[c.Name]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("column %q (%s) missing on target", c.Name, c.Type))
		case tt != c.Type:
			diffs = append(diffs, fmt.Sprintf("column %q is %s on source, %s on target", c.Name, c.Type, tt))
		}
		delete(target, c.Name)
	}
	extra := make([]string, 0, len(target))
	for n, tt := range target {
		extra = append(extra, fmt.Sprintf("column %q (%s) only on target", n, tt))
	}
	sort.Strings(extra)
	diffs = append(diffs, extra...)
	if len(diffs) > 0 {
		return fmt.Errorf("target: table %s has different columns: %s", t.QName(), strings.Join(diffs, "; "))
	}
	return nil
}
