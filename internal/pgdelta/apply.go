package pgdelta

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/pgutil"
)

// logRow is one change from the source's kwickmig.log: keys and column
// values in their text form (nil for NULL), as the trigger logged them.
type logRow struct {
	ID     int64     `json:"id"`
	Txid   uint64    `json:"x"`
	TID    int32     `json:"t"`
	Op     string    `json:"op"` // I U D T
	Key    []string  `json:"k,omitempty"`
	OldKey []*string `json:"ok,omitempty"` // old key (keyed tables) or old row (no key)
	Data   []*string `json:"d,omitempty"`
}

// newTableInfo builds the set-based statements for one table. Each logged
// column arrives as one text[] parameter and is cast to the target column's
// type, which runs the type's input function on the text its output
// function produced on the source: exact, as COPY's text format is.
func newTableInfo(c captured, tgtCols []column) (*tableInfo, error) {
	ti := &tableInfo{captured: c}
	q := c.qname()
	types := map[string]column{}
	for _, col := range tgtCols {
		types[col.Name] = col
	}
	isKey := map[string]bool{}
	var keys, conds, keyParams, keyAliases, keyTexts []string
	for i, k := range c.Key {
		col, ok := types[k]
		if !ok {
			return nil, fmt.Errorf("%s (key column %s missing on target)", c.display(), pgutil.QuoteIdent(k))
		}
		isKey[k] = true
		keys = append(keys, pgutil.QuoteIdent(k))
		keyParams = append(keyParams, fmt.Sprintf("$%d::text[]", i+1))
		keyAliases = append(keyAliases, fmt.Sprintf("a%d", i+1))
		conds = append(conds, fmt.Sprintf("d.%s = r.a%d::%s", pgutil.QuoteIdent(k), i+1, col.Type))
		keyTexts = append(keyTexts, fmt.Sprintf("d.%s::text", pgutil.QuoteIdent(k)))
	}
	var cols, params, aliases, exprs, updSets, updConds []string
	for i, name := range c.Cols {
		col, ok := types[name]
		if !ok || col.Generated {
			return nil, fmt.Errorf("%s (column %s missing or generated on target)", c.display(), pgutil.QuoteIdent(name))
		}
		qc := pgutil.QuoteIdent(name)
		cols = append(cols, qc)
		params = append(params, fmt.Sprintf("$%d::text[]", i+1))
		aliases = append(aliases, fmt.Sprintf("a%d", i+1))
		exprs = append(exprs, fmt.Sprintf("r.a%d::%s", i+1, col.Type))
		if !isKey[name] {
			updSets = append(updSets, fmt.Sprintf("%s = r.a%d::%s", qc, i+1, col.Type))
		} else {
			updConds = append(updConds, fmt.Sprintf("d.%s = r.a%d::%s", qc, i+1, col.Type))
		}
	}
	if len(c.Key) == 0 {
		return keylessStatements(ti, cols, exprs, params, aliases), nil
	}
	// Exact statements: an insert must add a row (a key already there is a
	// unique violation naming it), an update or delete must find its row
	// (each returns the keys it touched, to name the ones it did not).
	ti.upsertSQL = fmt.Sprintf("INSERT INTO %s AS d (%s) OVERRIDING SYSTEM VALUE\nSELECT %s FROM unnest(%s) AS r(%s)",
		q, strings.Join(cols, ", "), strings.Join(exprs, ", "), strings.Join(params, ", "), strings.Join(aliases, ", "))
	if len(updSets) == 0 { // every column is a key column: a no-op update still proves the row is there
		updSets = append(updSets, fmt.Sprintf("%[1]s = d.%[1]s", keys[0]))
	}
	ti.updateSQL = fmt.Sprintf("UPDATE %s AS d SET %s\nFROM unnest(%s) AS r(%s)\nWHERE %s\nRETURNING %s",
		q, strings.Join(updSets, ", "), strings.Join(params, ", "), strings.Join(aliases, ", "),
		strings.Join(updConds, " AND "), strings.Join(keyTexts, ", "))
	ti.deleteSQL = fmt.Sprintf("DELETE FROM %s AS d USING unnest(%s) AS r(%s) WHERE %s\nRETURNING %s",
		q, strings.Join(keyParams, ", "), strings.Join(keyAliases, ", "), strings.Join(conds, " AND "), strings.Join(keyTexts, ", "))
	return ti, nil
}

// keylessStatements builds the statements for a table without a key.
func keylessStatements(ti *tableInfo, cols, exprs, params, aliases []string) *tableInfo {
	q := ti.qname()
	n := len(cols)
	ti.upsertSQL = fmt.Sprintf("INSERT INTO %s AS d (%s) OVERRIDING SYSTEM VALUE\nSELECT %s FROM unnest(%s) AS r(%s)",
		q, strings.Join(cols, ", "), strings.Join(exprs, ", "), strings.Join(params, ", "), strings.Join(aliases, ", "))
	var conds, sets []string
	for i, c := range cols {
		// The output function's text, as the capture trigger logs it (a cast
		// to text may differ: booleans, inet, char(n)); NULL stays NULL.
		conds = append(conds, fmt.Sprintf("CASE WHEN pg_catalog.num_nulls(x.%[1]s) = 0 THEN pg_catalog.format('%%s', x.%[1]s) END IS NOT DISTINCT FROM $%[2]d::text", c, i+1))
		typ := exprs[i][strings.Index(exprs[i], "::")+2:]
		sets = append(sets, fmt.Sprintf("%s = $%d::text::%s", c, n+i+1, typ))
	}
	match := fmt.Sprintf("WITH m AS (SELECT x.tableoid AS toid, x.ctid AS tid FROM %s AS x WHERE %s LIMIT 1)\n",
		q, strings.Join(conds, " AND "))
	ti.rowDeleteSQL = match + fmt.Sprintf("DELETE FROM %s AS d USING m WHERE d.tableoid = m.toid AND d.ctid = m.tid", q)
	ti.rowUpdateSQL = match + fmt.Sprintf("UPDATE %s AS d SET %s FROM m WHERE d.tableoid = m.toid AND d.ctid = m.tid",
		q, strings.Join(sets, ", "))
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
	lw     *lockWatch // names the holder when the target's lock_timeout fires
	// restricted: no replica mode; target triggers and foreign keys are
	// turned off around each batch instead (restricted.go).
	restricted bool
	// takeover: per table, the last log row of a partition take-over;
	// changes up to it are applied leniently (takeover.go).
	takeover map[int32]int64
}

// apply applies rows in tx, with the target's own triggers and foreign
// keys out of the way.
func (a *applier) apply(ctx context.Context, tx pgx.Tx, rows []logRow) error {
	rows, err := a.beforeApply(ctx, tx, rows) // tablesnapshots.go, matviews.go
	if err != nil {
		return err
	}
	if !a.restricted || len(rows) == 0 {
		return a.applyRows(ctx, tx, rows)
	}
	g, err := a.disable(ctx, tx, rows)
	if err != nil {
		return err
	}
	if err := a.applyRows(ctx, tx, rows); err != nil {
		return err
	}
	return g.restore(ctx, tx)
}

type group struct {
	info *tableInfo
	dels [][]string  // keys that must exist, deleted first
	upds [][]*string // rows whose key must exist, updated next
	ins  [][]*string // rows whose key must not exist, inserted last
	keys map[string]struct{}
	// lenient: changes before a partition take-over (takeover.go): deletes
	// of any count, inserts and updates as upserts (all in ins).
	lenient bool
}

func keyString(k []string) string { return strings.Join(k, "\x00") }

func (g *group) has(k []string) bool {
	if len(k) == 0 { // no key (inserts into a table without one)
		return false
	}
	_, ok := g.keys[keyString(k)]
	return ok
}

// truncated is the table a TRUNCATE log row names: the captured table
// itself, or one of its partitions.
func truncated(r logRow, info *tableInfo) *table {
	if info == nil {
		return nil
	}
	if len(r.Key) == 2 {
		return &table{Schema: r.Key[0], Name: r.Key[1]}
	}
	return &info.table
}

// derefAll turns a key's values into strings (keys are never NULL).
func derefAll(vs []*string) []string {
	if vs == nil {
		return nil
	}
	out := make([]string, len(vs))
	for i, v := range vs {
		if v != nil {
			out[i] = *v
		}
	}
	return out
}

// columns transposes rows into one array per column, the statements'
// parameters.
func columns[T string | *string](rows [][]T, n int) []any {
	out := make([]any, n)
	for j := 0; j < n; j++ {
		col := make([]T, len(rows))
		for i, r := range rows {
			col[i] = r[j]
		}
		out[j] = col
	}
	return out
}

// applyRows queues the statements for rows on a batch and runs them in tx.
func (a *applier) applyRows(ctx context.Context, tx pgx.Tx, rows []logRow) error {
	b := &pgx.Batch{}
	var labels []stmt
	var g *group
	flush := func() {
		if g == nil {
			return
		}
		if g.lenient {
			if len(g.dels) > 0 {
				b.Queue(g.info.deleteSQL, columns(g.dels, len(g.info.Key))...)
				labels = append(labels, stmt{label: "delete from " + g.info.display(), want: -1})
			}
			if len(g.ins) > 0 {
				b.Queue(g.info.lenientUpsertSQL(), columns(g.ins, len(g.info.Cols))...)
				labels = append(labels, stmt{label: "upsert into " + g.info.display(), want: -1})
			}
			g = nil
			return
		}
		if len(g.dels) > 0 {
			b.Queue(g.info.deleteSQL, columns(g.dels, len(g.info.Key))...)
			labels = append(labels, stmt{label: "delete from " + g.info.display(), want: int64(len(g.dels)), info: g.info, keys: g.dels})
		}
		if len(g.upds) > 0 {
			b.Queue(g.info.updateSQL, columns(g.upds, len(g.info.Cols))...)
			labels = append(labels, stmt{label: "update " + g.info.display(), want: int64(len(g.upds)), info: g.info, keys: g.info.rowKeys(g.upds)})
		}
		if len(g.ins) > 0 {
			b.Queue(g.info.upsertSQL, columns(g.ins, len(g.info.Cols))...)
			labels = append(labels, stmt{label: "insert into " + g.info.display(), want: int64(len(g.ins))})
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
			var names, disp []string
			seen := map[string]bool{}
			add := func(r logRow) error {
				t := truncated(r, a.tables[r.TID])
				if t == nil {
					return fmt.Errorf("log row %d: table id %d is not a captured table", r.ID, r.TID)
				}
				if !seen[t.qname()] {
					seen[t.qname()] = true
					names = append(names, t.qname())
					disp = append(disp, t.display())
				}
				return nil
			}
			if err := add(r); err != nil {
				return err
			}
			for i+1 < len(rows) && rows[i+1].Op == "T" && rows[i+1].Txid == r.Txid {
				i++
				if err := add(rows[i]); err != nil {
					return err
				}
			}
			b.Queue("TRUNCATE " + strings.Join(names, ", "))
			labels = append(labels, stmt{label: "truncate " + strings.Join(disp, ", "), want: -1})
			continue
		}
		if len(info.Key) == 0 && r.Op != "I" {
			// No key: each update or delete is one statement on one row.
			flush()
			if len(r.OldKey) != len(info.Cols) || (r.Op == "U" && len(r.Data) != len(info.Cols)) {
				return fmt.Errorf("log row %d for %s: %d old and %d new values, want %d",
					r.ID, info.display(), len(r.OldKey), len(r.Data), len(info.Cols))
			}
			args := make([]any, 0, 2*len(info.Cols))
			for _, v := range r.OldKey {
				args = append(args, v)
			}
			sql, what := info.rowDeleteSQL, "delete from "
			if r.Op == "U" {
				sql, what = info.rowUpdateSQL, "update "
				for _, v := range r.Data {
					args = append(args, v)
				}
			}
			b.Queue(sql, args...)
			want := int64(1)
			if a.lenient(r) {
				want = -1
			}
			labels = append(labels, stmt{label: what + info.display() + " (table without key)", want: want})
			continue
		}
		if len(r.Key) != len(info.Key) || (r.Op != "D" && len(r.Data) != len(info.Cols)) {
			return fmt.Errorf("log row %d for %s: %d key and %d column values, want %d and %d",
				r.ID, info.display(), len(r.Key), len(r.Data), len(info.Key), len(info.Cols))
		}
		oldKey := derefAll(r.OldKey)
		lenient := a.lenient(r)
		if g != nil && (g.info != info || g.lenient != lenient || g.has(r.Key) || g.has(oldKey)) {
			flush()
		}
		if g == nil {
			g = &group{info: info, keys: map[string]struct{}{}, lenient: lenient}
		}
		switch r.Op {
		case "I":
			g.ins = append(g.ins, r.Data)
		case "U":
			if oldKey != nil {
				// A key change: the old row goes, the new key is new.
				g.dels = append(g.dels, oldKey)
				g.keys[keyString(oldKey)] = struct{}{}
				g.ins = append(g.ins, r.Data)
			} else if g.lenient {
				g.ins = append(g.ins, r.Data)
			} else {
				g.upds = append(g.upds, r.Data)
			}
		case "D":
			g.dels = append(g.dels, r.Key)
		default:
			return fmt.Errorf("log row %d: unknown operation %q", r.ID, r.Op)
		}
		g.keys[keyString(r.Key)] = struct{}{}
	}
	flush()
	if b.Len() == 0 {
		return nil
	}
	return runExact(ctx, tx, b, labels)
}

// setupTarget prepares a target session for applying: triggers and foreign
// keys off (session_replication_role = replica, allowed for superusers and
// Aurora's rds_superuser). Without it (a restricted owner role) the apply
// turns them off around each batch itself (restricted.go). It reports
// whether replica mode is on.
func setupTarget(ctx context.Context, target *pgx.Conn, lockTimeout time.Duration) (bool, error) {
	// Each statement joins a batch of keys against a table of any size: a
	// nested loop over the key index keeps its cost proportional to the
	// batch, where a hash join would scan the whole table per batch.
	// The same text forms as the capture trigger, for full-row matching.
	for _, s := range []string{"SET datestyle = ISO", "SET intervalstyle = postgres", "SET timezone = UTC",
		"SET extra_float_digits = 1", "SET bytea_output = hex",
		"SET enable_hashjoin = off", "SET enable_mergejoin = off", "SET work_mem = '64MB'",
		// Every wait for a lock ends; lockWatch names who held it.
		fmt.Sprintf("SET lock_timeout = %d", lockTimeout.Milliseconds())} {
		if _, err := target.Exec(ctx, s); err != nil {
			return false, fmt.Errorf("target: %s: %w", s, err)
		}
	}
	if _, err := target.Exec(ctx, "SET session_replication_role = replica"); err != nil {
		if _, err := target.Exec(ctx, pendingDDL); err != nil {
			return false, fmt.Errorf("target: create kwickmig.pending_fk: %w", err)
		}
		return false, nil
	}
	return true, nil
}
