package pgdelta

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/pgutil"
)

// logRow is one change from the source's kwickmig.log. Key, OldKey and Data
// are jsonb text as the source produced it.
type logRow struct {
	ID     int64   `json:"id"`
	Txid   uint64  `json:"x"`
	TID    int32   `json:"t"`
	Op     string  `json:"op"` // I U D T
	Key    rawJSON `json:"k,omitempty"`
	OldKey rawJSON `json:"ok,omitempty"`
	Data   rawJSON `json:"d,omitempty"`
}

// newTableInfo builds the set-based statements for one table. Rows arrive as
// a jsonb array; jsonb_populate_recordset turns each object back into the
// table's own column types with their input functions, so numeric, float
// NaN/Infinity, bytea, arrays, intervals, enums and domains come back exact.
func newTableInfo(c captured, tgtCols []column) *tableInfo {
	ti := &tableInfo{captured: c}
	q := c.qname()
	isKey := map[string]bool{}
	var keys, conds []string
	for _, k := range c.Key {
		isKey[k] = true
		keys = append(keys, pgutil.QuoteIdent(k))
		conds = append(conds, fmt.Sprintf("d.%[1]s = r.%[1]s", pgutil.QuoteIdent(k)))
	}
	var sets []string
	for _, col := range tgtCols {
		if col.Generated {
			continue
		}
		qc := pgutil.QuoteIdent(col.Name)
		ti.cols = append(ti.cols, qc)
		if !isKey[col.Name] {
			sets = append(sets, fmt.Sprintf("%[1]s = EXCLUDED.%[1]s", qc))
		}
	}
	conflict := "DO NOTHING"
	if len(sets) > 0 {
		conflict = "DO UPDATE SET " + strings.Join(sets, ", ")
	}
	cols := strings.Join(ti.cols, ", ")
	ti.upsertSQL = fmt.Sprintf(`INSERT INTO %s AS d (%s) OVERRIDING SYSTEM VALUE
SELECT %s FROM jsonb_populate_recordset(NULL::%s, $1::jsonb)
ON CONFLICT (%s) %s`, q, cols, cols, q, strings.Join(keys, ", "), conflict)
	ti.deleteSQL = fmt.Sprintf(`DELETE FROM %s AS d USING jsonb_populate_recordset(NULL::%s, $1::jsonb) AS r WHERE %s`,
		q, q, strings.Join(conds, " AND "))
	return ti
}

// applier turns a bounded slice of log rows, in log-id order, into a few
// set-based statements sent in one pipeline. Consecutive changes to one table
// that touch distinct keys form a group: its deletes (and the old keys of
// key-changing updates) run first, then one upsert of the new rows. A change
// to a key already in the group starts a new group, so every row's changes
// apply in log-id order, which is their commit order.
type applier struct {
	tables map[int32]*tableInfo
}

type group struct {
	info *tableInfo
	dels []rawJSON
	ups  []rawJSON
	keys map[string]struct{}
}

func (g *group) has(k rawJSON) bool {
	if k == nil {
		return false
	}
	_, ok := g.keys[string(k)]
	return ok
}

// apply queues the statements for rows on a batch and runs them in tx.
func (a *applier) apply(ctx context.Context, tx pgx.Tx, rows []logRow) error {
	b := &pgx.Batch{}
	var labels []string
	var g *group
	flush := func() {
		if g == nil {
			return
		}
		if len(g.dels) > 0 {
			b.Queue(g.info.deleteSQL, jsonArray(g.dels))
			labels = append(labels, "delete from "+g.info.display())
		}
		if len(g.ups) > 0 {
			b.Queue(g.info.upsertSQL, jsonArray(g.ups))
			labels = append(labels, "upsert into "+g.info.display())
		}
		g = nil
	}
	for i := 0; i < len(rows); i++ {
		r := rows[i]
		info := a.tables[r.TID]
		if info == nil {
			return fmt.Errorf("log row %d: table id %d is not a captured table", r.ID, r.TID)
		}
		if r.Op == "T" {
			flush()
			// Tables truncated by one statement (or one transaction) are
			// truncated together: one may reference another.
			names := []string{info.qname()}
			disp := []string{info.display()}
			seen := map[int32]bool{r.TID: true}
			for i+1 < len(rows) && rows[i+1].Op == "T" && rows[i+1].Txid == r.Txid {
				i++
				n := a.tables[rows[i].TID]
				if n == nil {
					return fmt.Errorf("log row %d: table id %d is not a captured table", rows[i].ID, rows[i].TID)
				}
				if !seen[rows[i].TID] {
					seen[rows[i].TID] = true
					names = append(names, n.qname())
					disp = append(disp, n.display())
				}
			}
			b.Queue("TRUNCATE " + strings.Join(names, ", "))
			labels = append(labels, "truncate "+strings.Join(disp, ", "))
			continue
		}
		if g != nil && (g.info != info || g.has(r.Key) || g.has(r.OldKey)) {
			flush()
		}
		if g == nil {
			g = &group{info: info, keys: map[string]struct{}{}}
		}
		switch r.Op {
		case "I":
			g.ups = append(g.ups, r.Data)
		case "U":
			if r.OldKey != nil {
				g.dels = append(g.dels, r.OldKey)
				g.keys[string(r.OldKey)] = struct{}{}
			}
			g.ups = append(g.ups, r.Data)
		case "D":
			g.dels = append(g.dels, r.Key)
		default:
			return fmt.Errorf("log row %d: unknown operation %q", r.ID, r.Op)
		}
		g.keys[string(r.Key)] = struct{}{}
	}
	flush()
	if b.Len() == 0 {
		return nil
	}
	br := tx.SendBatch(ctx, b)
	for _, l := range labels {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return fmt.Errorf("target: %s: %w", l, err)
		}
	}
	return br.Close()
}

// jsonArray joins jsonb texts into one JSON array text.
func jsonArray(items []rawJSON) string {
	n := 2
	for _, it := range items {
		n += len(it) + 1
	}
	var buf bytes.Buffer
	buf.Grow(n)
	buf.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(it)
	}
	buf.WriteByte(']')
	return buf.String()
}

// rawJSON is JSON text kept verbatim (json.RawMessage that stays nil for
// SQL NULL and JSON null alike).
type rawJSON []byte

// MarshalJSON implements json.Marshaler.
func (r rawJSON) MarshalJSON() ([]byte, error) {
	if r == nil {
		return []byte("null"), nil
	}
	return r, nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (r *rawJSON) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*r = nil
		return nil
	}
	*r = append((*r)[:0], b...)
	return nil
}

// setupTarget prepares a target session for applying: triggers and foreign
// keys off (session_replication_role = replica, allowed for superusers and
// Aurora's rds_superuser), else foreign keys deferred where they are
// deferrable. It reports whether replica mode is on.
func setupTarget(ctx context.Context, target *pgx.Conn) (bool, error) {
	for _, s := range []string{"SET datestyle = ISO", "SET intervalstyle = postgres"} {
		if _, err := target.Exec(ctx, s); err != nil {
			return false, fmt.Errorf("target: %s: %w", s, err)
		}
	}
	if _, err := target.Exec(ctx, "SET session_replication_role = replica"); err != nil {
		return false, nil
	}
	return true, nil
}
