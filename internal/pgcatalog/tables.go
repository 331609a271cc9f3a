package pgcatalog

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Table is one user table: ordinary, partitioned or a partition.
type Table struct {
	OID uint32
	Name
	Partitioned bool   // holds no rows itself
	Root        uint32 // top of its partition tree; OID itself when not a partition
	Size        int64  // pg_relation_size: the main fork, in bytes
}

// tablesSQL lists the tables db copy, db export and the capture check work
// on (change capture keeps its own list with fingerprints, pgdelta): not in system schemas
// nor kwickmig's own (change capture), not temporary, not extension members
// (the extension creates them).
const tablesSQL = `
SELECT c.oid, n.nspname, c.relname, c.relkind = 'p',
       coalesce(pg_catalog.pg_partition_root(c.oid)::oid, c.oid), pg_catalog.pg_relation_size(c.oid)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'kwickmig')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY n.nspname, c.relname`

// ListTables reads every user table, in schema and name order.
func ListTables(ctx context.Context, conn *pgx.Conn) ([]Table, error) {
	rows, _ := conn.Query(ctx, tablesSQL)
	ts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Table, error) {
		var t Table
		return t, r.Scan(&t.OID, &t.Schema, &t.Table, &t.Partitioned, &t.Root, &t.Size)
	})
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	return ts, nil
}

// Names returns the tables' names, for Resolve.
func Names(ts []Table) []Name {
	out := make([]Name, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}
