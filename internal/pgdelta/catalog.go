package pgdelta

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/pgcatalog"
	"github.com/kwick/kwickmig/internal/pgutil"
)

// table is one user table as the catalog describes it.
type table struct {
	OID         uint32
	Schema      string
	Name        string
	Fingerprint string   // md5 over column names, type oids, typmods, not-null and generated flags
	Key         []string // primary key, else the narrowest unique not-null key; nil if none
}

// qname is the quoted schema.table.
func (t table) qname() string { return pgutil.QualifiedName(t.Schema, t.Name) }

// display is schema.table as a user would type it (quoted only where needed).
func (t table) display() string { return displayName(t.Schema, t.Name) }

func displayName(schema, name string) string { return pgcatalog.Display(schema, name) }

// userTablesSQL lists ordinary and partitioned tables that a bulk copy would
// copy: not system schemas, not kwickmig's own, not temporary, not partitions
// (changes are captured on their parent), not extension members.
const userTablesSQL = `
SELECT c.oid, n.nspname, c.relname,
       md5(coalesce(string_agg(a.attname || ':' || a.atttypid || ':' || a.atttypmod || ':' || a.attnotnull || ':' || a.attgenerated::text,
                               ',' ORDER BY a.attnum), ''))
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'kwickmig')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
GROUP BY c.oid, n.nspname, c.relname
ORDER BY n.nspname, c.relname`

// keysSQL lists usable keys: the primary key and unique, valid, immediate,
// non-partial, non-expression indexes whose key columns are all NOT NULL.
const keysSQL = `
SELECT i.indrelid, i.indisprimary, array_agg(a.attname ORDER BY k.ord)
FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indisunique AND i.indisvalid AND i.indimmediate AND i.indpred IS NULL AND i.indexprs IS NULL
  AND k.ord <= i.indnkeyatts
GROUP BY i.indexrelid, i.indrelid, i.indisprimary
HAVING bool_and(a.attnotnull)`

// listTables reads every user table with its fingerprint and best key.
func listTables(ctx context.Context, conn *pgx.Conn) ([]table, error) {
	rows, err := conn.Query(ctx, userTablesSQL)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (table, error) {
		var t table
		err := r.Scan(&t.OID, &t.Schema, &t.Name, &t.Fingerprint)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	type cand struct {
		primary bool
		cols    []string
	}
	best := map[uint32]cand{}
	rows, err = conn.Query(ctx, keysSQL)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	var (
		oid     uint32
		primary bool
		cols    []string
	)
	_, err = pgx.ForEachRow(rows, []any{&oid, &primary, &cols}, func() error {
		c, ok := best[oid]
		better := !ok || (primary && !c.primary) ||
			(primary == c.primary && (len(cols) < len(c.cols) ||
				len(cols) == len(c.cols) && strings.Join(cols, "\x00") < strings.Join(c.cols, "\x00")))
		if better {
			best[oid] = cand{primary: primary, cols: append([]string(nil), cols...)}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	for i := range tables {
		if c, ok := best[tables[i].OID]; ok {
			tables[i].Key = c.cols
		}
	}
	return tables, nil
}

// column is one column of a target table, as the apply needs it.
type column struct {
	Name      string
	Type      string // format_type: resolvable in the session that read it
	Generated bool   // GENERATED ALWAYS AS (…) STORED: computed by the target, never written
}

// tableColumns returns the non-dropped columns of schema.name on conn in
// attnum order, or nil if the table does not exist.
func tableColumns(ctx context.Context, conn *pgx.Conn, schema, name string) ([]column, error) {
	// format_type qualifies a type exactly when this session's search_path
	// does not see it, so the apply statements (same session) resolve it.
	rows, err := conn.Query(ctx, `
		SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attgenerated <> ''
		FROM pg_attribute a
		JOIN pg_class c ON c.oid = a.attrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`, schema, name)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (column, error) {
		var c column
		err := r.Scan(&c.Name, &c.Type, &c.Generated)
		return c, err
	})
}

// matchPattern reports whether table t could be what an --exclude-table
// name recorded at install means (package pgcatalog's rule, without the
// uniqueness check: installs by older kwickmig versions recorded the names
// as typed, and a bare one excluded the name in every schema).
func matchPattern(t table, pattern string) bool {
	sp, err := pgcatalog.Parse(pattern)
	return err == nil && sp.Matches(t.Schema, t.Name)
}

// resolveTables resolves typed table names against tables by package
// pgcatalog's rule: each must name exactly one. The error names every name
// that does not.
func resolveTables(names []string, tables []table) ([]table, error) {
	cat := make([]pgcatalog.Name, len(tables))
	for i, t := range tables {
		cat[i] = pgcatalog.Name{Schema: t.Schema, Table: t.Name}
	}
	hit, err := pgcatalog.ResolveAll(names, cat)
	if err != nil {
		return nil, err
	}
	out := make([]table, len(hit))
	for i, h := range hit {
		out[i] = tables[h]
	}
	return out, nil
}

// sortedNames returns display names sorted, for error messages.
func sortedNames(ts []table) []string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.display()
	}
	sort.Strings(names)
	return names
}
