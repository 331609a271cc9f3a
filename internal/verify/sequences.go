package verify

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/pgutil"
)

// SequenceCheck is one sequence: the target must not hand out a value the
// source already handed out, nor one its column already holds.
type SequenceCheck struct {
	Sequence   string `json:"sequence"`
	Column     string `json:"column,omitempty"` // table.column it feeds (OWNED BY or identity)
	SourceNext *int64 `json:"source_next"`      // the value nextval() would return
	TargetNext *int64 `json:"target_next"`
	ColumnMax  *int64 `json:"column_max,omitempty"` // on the target
	OK         bool   `json:"ok"`
	Problem    string `json:"problem,omitempty"`
}

// sequencesQuery lists sequences with the column they feed, if any.
const sequencesQuery = `
SELECT n.nspname, c.relname, s.seqincrement,
  (SELECT tn.nspname || '.' || t.relname || '.' || a.attname
     FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid
     JOIN pg_namespace tn ON tn.oid = t.relnamespace
     JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')
      AND d.refobjsubid > 0 LIMIT 1),
  (SELECT pg_catalog.quote_ident(tn.nspname) || '.' || pg_catalog.quote_ident(t.relname) || '|' || pg_catalog.quote_ident(a.attname)
     FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid
     JOIN pg_namespace tn ON tn.oid = t.relnamespace
     JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')
      AND d.refobjsubid > 0 LIMIT 1)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_sequence s ON s.seqrelid = c.oid
WHERE c.relkind = 'S' AND n.nspname NOT IN ` + excludedSchemas + `
ORDER BY 1, 2`

type seqInfo struct {
	schema, name string
	inc          int64
	column       *string // schema.table.column, display
	colRef       *string // quoted table|column
}

// checkSequences compares every source sequence with the target's. When
// the run is limited to some tables, only their sequences are checked.
func checkSequences(ctx context.Context, src, dst *pgx.Conn, tables []*table) ([]SequenceCheck, error) {
	seqs, err := readSourceSequences(ctx, src, tables)
	if err != nil {
		return nil, err
	}
	var out []SequenceCheck
	for _, s := range seqs {
		c, err := checkTargetSequence(ctx, dst, s.info, s.next)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// sourceSequence is one source sequence of the run and the value its
// nextval() would return there.
type sourceSequence struct {
	info seqInfo
	next int64
}

// readSourceSequences reads the source's sequences (only those of the
// run's tables, or not tied to a table) and their next values.
func readSourceSequences(ctx context.Context, src *pgx.Conn, tables []*table) ([]sourceSequence, error) {
	rows, _ := src.Query(ctx, sequencesQuery)
	seqs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (seqInfo, error) {
		var s seqInfo
		return s, r.Scan(&s.schema, &s.name, &s.inc, &s.column, &s.colRef)
	})
	if err != nil {
		return nil, fmt.Errorf("source: list sequences: %s", oneLine(err))
	}
	inRun := map[string]bool{}
	for _, t := range tables {
		inRun[t.id()] = true
	}
	var out []sourceSequence
	for _, s := range seqs {
		if s.column != nil && !inRun[tableOfColumn(*s.column)] {
			continue
		}
		next, err := nextValue(ctx, src, pgutil.QualifiedName(s.schema, s.name), s.inc)
		if err != nil {
			return nil, fmt.Errorf("source: sequence %s.%s: %s", s.schema, s.name, oneLine(err))
		}
		out = append(out, sourceSequence{info: s, next: *next})
	}
	return out, nil
}

// checkTargetSequence compares one sequence of the target with the
// source's next value (read directly or from a manifest).
func checkTargetSequence(ctx context.Context, dst *pgx.Conn, s seqInfo, sourceNext int64) (SequenceCheck, error) {
	c := SequenceCheck{Sequence: s.schema + "." + s.name, OK: true, SourceNext: &sourceNext}
	if s.column != nil {
		c.Column = *s.column
	}
	var err error
	qn := pgutil.QualifiedName(s.schema, s.name)
	if c.TargetNext, err = nextValue(ctx, dst, qn, s.inc); err != nil {
		c.OK, c.Problem = false, "not on the target"
		// The failed statement aborted the snapshot transaction: undo it.
		if _, err := dst.Exec(ctx, "ROLLBACK TO SAVEPOINT kwickmig_seq"); err != nil {
			return c, fmt.Errorf("target: %s", oneLine(err))
		}
		return c, nil
	}
	if *c.TargetNext < *c.SourceNext {
		c.OK, c.Problem = false, fmt.Sprintf("behind: the target would hand out %d, the source already reached %d", *c.TargetNext, *c.SourceNext)
	}
	if s.colRef != nil {
		tbl, col, _ := strings.Cut(*s.colRef, "|")
		var m *int64
		err := dst.QueryRow(ctx, "SELECT max("+col+")::bigint FROM "+tbl).Scan(&m)
		if err != nil {
			if _, err := dst.Exec(ctx, "ROLLBACK TO SAVEPOINT kwickmig_seq"); err != nil {
				return c, fmt.Errorf("target: %s", oneLine(err))
			}
		} else if m != nil {
			c.ColumnMax = m
			if *c.TargetNext <= *m && s.inc > 0 {
				c.OK = false
				c.Problem = fmt.Sprintf("behind its column: the target would hand out %d, %s already holds %d", *c.TargetNext, c.Column, *m)
			}
		}
	}
	return c, nil
}

// nextValue is what nextval() would return, read without calling it. It
// runs under a savepoint so a missing sequence does not end the snapshot.
func nextValue(ctx context.Context, c *pgx.Conn, qname string, inc int64) (*int64, error) {
	if _, err := c.Exec(ctx, "SAVEPOINT kwickmig_seq"); err != nil {
		return nil, err
	}
	var last int64
	var called bool
	if err := c.QueryRow(ctx, "SELECT last_value, is_called FROM "+qname).Scan(&last, &called); err != nil {
		return nil, err
	}
	if called {
		last += inc
	}
	return &last, nil
}

func tableOfColumn(col string) string {
	for i := len(col) - 1; i >= 0; i-- {
		if col[i] == '.' {
			return col[:i]
		}
	}
	return col
}
