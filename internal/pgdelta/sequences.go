package pgdelta

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/pgutil"
)

// seqValue is one sequence's state on the source.
type seqValue struct {
	Schema   string `json:"schema"`
	Name     string `json:"name"`
	Value    int64  `json:"value"`
	IsCalled bool   `json:"is_called"`
}

// sourceSequences reads every user sequence's current value (identity and
// serial sequences included; kwickmig's own and extension members left out).
func sourceSequences(ctx context.Context, source *pgx.Conn) ([]seqValue, error) {
	rows, err := source.Query(ctx, `
		SELECT n.nspname, c.relname
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'kwickmig')
		  AND n.nspname NOT LIKE 'pg\_temp%'
		  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
		ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("source: list sequences: %w", err)
	}
	seqs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (seqValue, error) {
		var s seqValue
		err := r.Scan(&s.Schema, &s.Name)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("source: list sequences: %w", err)
	}
	if len(seqs) == 0 {
		return nil, nil
	}
	b := &pgx.Batch{}
	for i := range seqs {
		s := &seqs[i]
		b.Queue("SELECT last_value, is_called FROM " + pgutil.QualifiedName(s.Schema, s.Name)).QueryRow(func(row pgx.Row) error {
			if err := row.Scan(&s.Value, &s.IsCalled); err != nil {
				return fmt.Errorf("source: read sequence %s: %w", displayName(s.Schema, s.Name), err)
			}
			return nil
		})
	}
	if err := source.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	return seqs, nil
}

// setSequences sets each sequence on the target; missing ones are listed in
// one error after the rest were set.
func setSequences(ctx context.Context, target *pgx.Conn, seqs []seqValue) (int, error) {
	var missing []string
	b := &pgx.Batch{}
	n := 0
	for _, s := range seqs {
		q := pgutil.QualifiedName(s.Schema, s.Name)
		var exists bool
		if err := target.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, q).Scan(&exists); err != nil {
			return 0, fmt.Errorf("target: look up sequence %s: %w", displayName(s.Schema, s.Name), err)
		}
		if !exists {
			missing = append(missing, displayName(s.Schema, s.Name))
			continue
		}
		b.Queue(`SELECT setval($1::regclass, $2, $3)`, q, s.Value, s.IsCalled)
		n++
	}
	if n > 0 {
		if err := target.SendBatch(ctx, b).Close(); err != nil {
			return 0, fmt.Errorf("target: set sequences: %w", err)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return n, fmt.Errorf("target: %d sequences missing, not set: %s", len(missing), strings.Join(missing, ", "))
	}
	return n, nil
}

// syncSequences sets every target sequence to the source's current value.
func syncSequences(ctx context.Context, source, target *pgx.Conn) (int, error) {
	seqs, err := sourceSequences(ctx, source)
	if err != nil {
		return 0, err
	}
	return setSequences(ctx, target, seqs)
}
