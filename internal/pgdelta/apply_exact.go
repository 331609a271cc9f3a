package pgdelta

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// stmt is one queued apply statement and what it must do: affect exactly
// want rows (-1: any). Statements with info set return the key text of each
// row they touched, so a shortfall names the keys the target lacked.
type stmt struct {
	label string
	want  int64
	info  *tableInfo
	keys  [][]string // the keys the statement must find
}

// rowKeys picks the key columns out of logged rows.
func (ti *tableInfo) rowKeys(rows [][]*string) [][]string {
	pos := make([]int, len(ti.Key))
	for i, k := range ti.Key {
		for j, c := range ti.Cols {
			if c == k {
				pos[i] = j
			}
		}
	}
	out := make([][]string, len(rows))
	for i, r := range rows {
		k := make([]string, len(pos))
		for j, p := range pos {
			if r[p] != nil {
				k[j] = *r[p]
			}
		}
		out[i] = k
	}
	return out
}

// keyText shows a key as PostgreSQL's messages do: (a, b)=(1, x).
func (ti *tableInfo) keyText(k []string) string {
	return "(" + strings.Join(ti.Key, ", ") + ")=(" + strings.Join(k, ", ") + ")"
}

// runExact sends the batch and checks every statement's row count. Any
// difference is an error naming the table and the keys: the target no
// longer matches what the source's log was recorded against (a row changed
// or deleted directly on the target), and applying on top of it would make
// the difference silent. The caller's transaction then rolls back.
func runExact(ctx context.Context, tx pgx.Tx, b *pgx.Batch, labels []stmt) error {
	br := tx.SendBatch(ctx, b)
	fail := func(err error) error {
		br.Close()
		return err
	}
	for _, l := range labels {
		if l.info == nil {
			tag, err := br.Exec()
			if err != nil {
				return fail(fmt.Errorf("target: %s: %w", l.label, withDetail(err)))
			}
			if l.want >= 0 && tag.RowsAffected() != l.want {
				return fail(fmt.Errorf("target: %s: %d rows matched the source's old row, want %d: the target differs from the source",
					l.label, tag.RowsAffected(), l.want))
			}
			continue
		}
		rows, err := br.Query()
		if err != nil {
			return fail(fmt.Errorf("target: %s: %w", l.label, withDetail(err)))
		}
		found := map[string]bool{}
		var n int64
		for rows.Next() {
			vals := rows.RawValues()
			k := make([]string, len(vals))
			for i, v := range vals {
				k[i] = string(v)
			}
			found[keyString(k)] = true
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fail(fmt.Errorf("target: %s: %w", l.label, withDetail(err)))
		}
		if n == l.want {
			continue
		}
		var missing []string
		for _, k := range l.keys {
			if !found[keyString(k)] {
				missing = append(missing, l.info.keyText(k))
			}
		}
		more := ""
		if len(missing) > 5 {
			more = fmt.Sprintf(" and %d more", len(missing)-5)
			missing = missing[:5]
		}
		which := strings.Join(missing, ", ") + more
		if which == "" { // text forms differ between the sides: the count still decides
			which = fmt.Sprintf("%d keys", l.want-n)
		}
		return fail(fmt.Errorf("target: %s: %d of %d rows not found on the target: %s (deleted or changed directly on the target?); this batch was not applied",
			l.label, l.want-n, l.want, which))
	}
	return br.Close()
}

// withDetail adds PostgreSQL's detail line (for a unique violation: the
// key that already exists) to the error text, keeping the error matchable.
func withDetail(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Detail != "" {
		hint := ""
		if pe.Code == "23505" {
			hint = " (the source inserted a row the target already has: changed directly on the target?)"
		}
		return fmt.Errorf("%w: %s%s", err, pe.Detail, hint)
	}
	return err
}
