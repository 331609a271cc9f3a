package verify

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/pgcatalog"
	"github.com/kwick/kwickmig/internal/pgutil"
)

// The catalog queries are verify's own: pgcopy's are unexported and shaped
// for copying (they leave generated columns out; verify compares them too).

// column is one live column.
type column struct {
	Name    string
	Type    string // format_type(), schema-qualified (empty search_path)
	NotNull bool
}

// table is one ordinary table or leaf partition.
type table struct {
	OID     uint32
	Schema  string
	Name    string
	Columns []column
	Key     []string // primary key, else a unique index on NOT NULL columns; nil if none
	KeyKind string   // "primary key", "unique index" or ""
	Indexes []string // index definitions with the index name left out
	Checks  []string // constraint type and definition, names left out
}

// Key identifies the table in reports: schema.name, unquoted.
func (t *table) id() string    { return t.Schema + "." + t.Name }
func (t *table) qname() string { return pgutil.QualifiedName(t.Schema, t.Name) }

// excludedSchemas are never compared: system schemas and kwickmig's own
// change-capture schema (present on the source only, by design).
const excludedSchemas = `('pg_catalog', 'information_schema', 'kwickmig')`

const tablesQuery = `
SELECT c.oid, n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND c.relpersistence <> 't' AND n.nspname NOT IN ` + excludedSchemas + ` AND n.nspname NOT LIKE 'pg\_%'
ORDER BY n.nspname, c.relname`

const columnsQuery = `
SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
FROM pg_attribute a
WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum`

// keysQuery picks, per table, the primary key, else the first unique,
// non-partial, non-expression index whose columns are all NOT NULL.
const keysQuery = `
SELECT DISTINCT ON (i.indrelid) i.indrelid, i.indisprimary,
  array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord)
FROM pg_index i
WHERE i.indrelid = ANY($1) AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
  AND i.indexprs IS NULL AND 0 <> ALL (i.indkey)
  AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = i.indrelid
                  AND a.attnum = ANY (i.indkey) AND NOT a.attnotnull)
ORDER BY i.indrelid, i.indisprimary DESC, i.indnkeyatts, i.indexrelid`

const indexesQuery = `
SELECT i.indrelid, regexp_replace(pg_get_indexdef(i.indexrelid), ' INDEX \S+ ON ', ' INDEX ON ')
FROM pg_index i WHERE i.indrelid = ANY($1)
ORDER BY 1, 2`

const constraintsQuery = `
SELECT c.conrelid, c.contype::text || ' ' || pg_get_constraintdef(c.oid)
FROM pg_constraint c WHERE c.conrelid = ANY($1)
ORDER BY 1, 2`

// readCatalog lists the tables of one side with their columns, keys,
// indexes and constraints.
func readCatalog(ctx context.Context, side pgutil.Side, q *pgx.Conn) ([]*table, error) {
	rows, _ := q.Query(ctx, tablesQuery)
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*table, error) {
		t := &table{}
		return t, r.Scan(&t.OID, &t.Schema, &t.Name)
	})
	if err != nil {
		return nil, fmt.Errorf("%s: list tables: %s", side, oneLine(err))
	}
	byOID, err := readColumns(ctx, q, tables)
	if err != nil {
		return nil, fmt.Errorf("%s: list columns: %s", side, oneLine(err))
	}
	oids := make([]uint32, 0, len(tables))
	for _, t := range tables {
		oids = append(oids, t.OID)
	}
	var rel uint32
	var primary bool
	var key []string
	rows, _ = q.Query(ctx, keysQuery, oids)
	if _, err := pgx.ForEachRow(rows, []any{&rel, &primary, &key}, func() error {
		t := byOID[rel]
		t.Key, t.KeyKind = key, "unique index"
		if primary {
			t.KeyKind = "primary key"
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("%s: list keys: %s", side, oneLine(err))
	}
	var def string
	for _, q2 := range []struct {
		sql string
		add func(*table, string)
	}{
		{indexesQuery, func(t *table, d string) { t.Indexes = append(t.Indexes, d) }},
		{constraintsQuery, func(t *table, d string) { t.Checks = append(t.Checks, d) }},
	} {
		rows, _ = q.Query(ctx, q2.sql, oids)
		if _, err := pgx.ForEachRow(rows, []any{&rel, &def}, func() error {
			q2.add(byOID[rel], def)
			return nil
		}); err != nil {
			return nil, fmt.Errorf("%s: list indexes and constraints: %s", side, oneLine(err))
		}
	}
	return tables, nil
}

// filterTables keeps the tables named by --table, by the naming rule of
// package pgcatalog: each name must match exactly one table on the source.
func filterTables(all []*table, specs []string) ([]*table, error) {
	if len(specs) == 0 {
		return all, nil
	}
	names := make([]pgcatalog.Name, len(all))
	for i, t := range all {
		names[i] = pgcatalog.Name{Schema: t.Schema, Table: t.Name}
	}
	hit, err := pgcatalog.ResolveAll(specs, names)
	if err != nil {
		return nil, fmt.Errorf("--table: %w on the source", err)
	}
	out := make([]*table, len(hit))
	for i, h := range hit {
		out[i] = all[h]
	}
	return out, nil
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// readColumns fills in the columns of tables (tables and materialized
// views alike) with one query, and returns them by oid.
func readColumns(ctx context.Context, q *pgx.Conn, tables []*table) (map[uint32]*table, error) {
	byOID := make(map[uint32]*table, len(tables))
	oids := make([]uint32, 0, len(tables))
	for _, t := range tables {
		byOID[t.OID] = t
		oids = append(oids, t.OID)
	}
	var rel uint32
	var c column
	rows, _ := q.Query(ctx, columnsQuery, oids)
	_, err := pgx.ForEachRow(rows, []any{&rel, &c.Name, &c.Type, &c.NotNull}, func() error {
		byOID[rel].Columns = append(byOID[rel].Columns, c)
		return nil
	})
	return byOID, err
}
