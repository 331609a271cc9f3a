package pgdelta

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Materialized views on the target are built once by the bulk copy; the
// delta rounds change their base tables. Every apply transaction records
// the tables it changed in kwickmig.matview_pending, committed with the
// changes; at the end of a final-delta or import-delta run the materialized
// views that depend on them (through views and other materialized views,
// read from pg_rewrite and pg_depend) are refreshed in dependency order and
// analyzed, then the tables are cleared. A crash in between leaves them
// pending: the next run refreshes.

const matviewPendingDDL = `CREATE TABLE IF NOT EXISTS kwickmig.matview_pending (
	schema_name text NOT NULL,
	table_name  text NOT NULL,
	PRIMARY KEY (schema_name, table_name)
)`

// hasMatviews reports whether the target has a materialized view outside
// kwickmig's schema.
const hasMatviewsSQL = `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	WHERE c.relkind = 'm' AND n.nspname <> 'kwickmig')`

// markChanged records, in the apply transaction, the captured tables rows
// change, when the target has materialized views at all.
func (a *applier) markChanged(ctx context.Context, tx pgx.Tx, rows []logRow) error {
	if len(rows) == 0 {
		return nil
	}
	var any bool
	if err := tx.QueryRow(ctx, hasMatviewsSQL).Scan(&any); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	if !any {
		return nil
	}
	seen := map[int32]bool{}
	var schemas, names []string
	for _, r := range rows {
		info := a.tables[r.TID]
		if info == nil || seen[r.TID] {
			continue
		}
		seen[r.TID] = true
		schemas, names = append(schemas, info.Schema), append(names, info.Name)
	}
	if _, err := tx.Exec(ctx, matviewPendingDDL); err != nil {
		return fmt.Errorf("target: create kwickmig.matview_pending: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO kwickmig.matview_pending SELECT * FROM unnest($1::text[], $2::text[])
		ON CONFLICT DO NOTHING`, schemas, names); err != nil {
		return fmt.Errorf("target: record changed tables: %w", err)
	}
	return nil
}

// dependentMatviewsSQL: the populated materialized views that depend, at
// any depth, on the tables $1.$2 (or their partitions), deepest last: a
// view's depth is its longest path from a changed table, so every view
// comes after the views it reads.
const dependentMatviewsSQL = `
WITH RECURSIVE dep(viewid, base) AS (
  SELECT DISTINCT r.ev_class, d.refobjid
  FROM pg_catalog.pg_rewrite r
  JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
   AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid <> r.ev_class
  JOIN pg_catalog.pg_class v ON v.oid = r.ev_class AND v.relkind IN ('v', 'm')
), changed AS (
  SELECT p.relid AS oid
  FROM unnest($1::text[], $2::text[]) t(s, n)
  JOIN pg_catalog.pg_namespace ns ON ns.nspname = t.s
  JOIN pg_catalog.pg_class c ON c.relnamespace = ns.oid AND c.relname = t.n
  CROSS JOIN LATERAL pg_catalog.pg_partition_tree(c.oid) p
  UNION
  SELECT c.oid FROM unnest($1::text[], $2::text[]) t(s, n)
  JOIN pg_catalog.pg_namespace ns ON ns.nspname = t.s
  JOIN pg_catalog.pg_class c ON c.relnamespace = ns.oid AND c.relname = t.n
), reach(viewid, depth) AS (
  SELECT viewid, 1 FROM dep WHERE base IN (SELECT oid FROM changed)
  UNION
  SELECT d.viewid, r.depth + 1 FROM dep d JOIN reach r ON d.base = r.viewid WHERE r.depth < 64
)
SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname), max(r.depth)
FROM reach r JOIN pg_catalog.pg_class c ON c.oid = r.viewid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'm' AND c.relispopulated
GROUP BY 1 ORDER BY 2, 1`

// refreshMatviews refreshes and analyzes the materialized views over the
// tables delta rounds changed (unless opts.NoRefreshMatviews), then clears
// those tables. It returns the views refreshed.
func refreshMatviews(ctx context.Context, target *pgx.Conn, opts Options) ([]string, error) {
	var exists bool
	if err := target.QueryRow(ctx, `SELECT to_regclass('kwickmig.matview_pending') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	if !exists {
		return nil, nil
	}
	rows, _ := target.Query(ctx, `SELECT schema_name, table_name FROM kwickmig.matview_pending`)
	var schemas, names []string
	var s, n string
	if _, err := pgx.ForEachRow(rows, []any{&s, &n}, func() error {
		schemas, names = append(schemas, s), append(names, n)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("target: read kwickmig.matview_pending: %w", err)
	}
	if len(names) == 0 {
		return nil, nil
	}
	rows, _ = target.Query(ctx, dependentMatviewsSQL, schemas, names)
	var views []string
	var depth int
	if _, err := pgx.ForEachRow(rows, []any{&s, &depth}, func() error {
		views = append(views, s)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("target: materialized views over changed tables: %w", err)
	}
	if opts.NoRefreshMatviews {
		if len(views) > 0 {
			opts.Logger.Warn("materialized views not refreshed (--no-refresh-matviews): they hold the data of the bulk copy", "views", views)
		}
		return nil, nil
	}
	for _, v := range views {
		start := time.Now()
		// The apply session turns hash and merge joins off (key lookups);
		// a view's own query gets the planner's full choice back.
		err := pgx.BeginFunc(ctx, target, func(tx pgx.Tx) error {
			for _, stmt := range []string{"SET LOCAL enable_hashjoin = on", "SET LOCAL enable_mergejoin = on", "REFRESH MATERIALIZED VIEW " + v} {
				if _, err := tx.Exec(ctx, stmt); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("target: refresh materialized view %s: %w", v, err)
		}
		if _, err := target.Exec(ctx, "ANALYZE "+v); err != nil {
			return nil, fmt.Errorf("target: analyze %s: %w", v, err)
		}
		opts.Logger.Info("materialized view refreshed", "view", v, "seconds", fmt.Sprintf("%.2f", time.Since(start).Seconds()))
	}
	if _, err := target.Exec(ctx, `DELETE FROM kwickmig.matview_pending t USING unnest($1::text[], $2::text[]) AS p(s, n)
		WHERE t.schema_name = p.s AND t.table_name = p.n`, schemas, names); err != nil {
		return nil, fmt.Errorf("target: clear kwickmig.matview_pending: %w", err)
	}
	return views, nil
}
