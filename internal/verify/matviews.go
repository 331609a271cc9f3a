package verify

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/pgutil"
)

// Materialized views are compared by content, as tables without a key are
// (a checksum over all rows; rows only on one side are counted when the
// view is small enough): db copy builds them and every delta round that
// changes their base tables refreshes them, so a stale view is a
// difference. Views not populated on the source are not compared.

const matviewsQuery = `
SELECT c.oid, n.nspname, c.relname, c.relispopulated
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'm' AND n.nspname NOT IN ` + excludedSchemas + ` AND n.nspname NOT LIKE 'pg\_%'
ORDER BY n.nspname, c.relname`

// readMatviews lists one side's materialized views with their columns, and
// whether each is populated.
func readMatviews(ctx context.Context, side pgutil.Side, q *pgx.Conn) ([]*table, map[string]bool, error) {
	rows, _ := q.Query(ctx, matviewsQuery)
	populated := map[string]bool{}
	views, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*table, error) {
		t := &table{}
		var pop bool
		err := r.Scan(&t.OID, &t.Schema, &t.Name, &pop)
		populated[t.id()] = pop
		return t, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: list materialized views: %s", side, oneLine(err))
	}
	if _, err := readColumns(ctx, q, views); err != nil {
		return nil, nil, fmt.Errorf("%s: columns of materialized views: %s", side, oneLine(err))
	}
	return views, populated, nil
}

// matviewPairs returns the populated materialized views of the source to
// compare by content, and adds to res.Schema those missing, unpopulated
// or with other columns on the target. Not with --table.
func matviewPairs(ctx context.Context, src, dst *pgx.Conn, filtered bool, res *DBResult) ([]tablePair, error) {
	if filtered {
		return nil, nil
	}
	sv, spop, err := readMatviews(ctx, pgutil.Source, src)
	if err != nil {
		return nil, err
	}
	dv, dpop, err := readMatviews(ctx, pgutil.Target, dst)
	if err != nil {
		return nil, err
	}
	return pairMatviews(sv, spop, dv, dpop, res), nil
}

// pairMatviews matches the source's populated materialized views with the
// target's (read directly or from a manifest).
func pairMatviews(sv []*table, spop map[string]bool, dv []*table, dpop map[string]bool, res *DBResult) []tablePair {
	add := func(t, kind, format string, args ...any) {
		res.Schema = append(res.Schema, SchemaDiff{Table: t, Kind: kind, Detail: fmt.Sprintf(format, args...)})
	}
	byID := map[string]*table{}
	for _, t := range dv {
		byID[t.id()] = t
	}
	var pairs []tablePair
	for _, s := range sv {
		d := byID[s.id()]
		switch {
		case !spop[s.id()]:
			continue
		case d == nil:
			add(s.id(), "table_missing", "materialized view %s is not on the target", s.id())
			continue
		case !dpop[d.id()]:
			add(s.id(), "matview_unpopulated", "materialized view %s is not populated on the target (REFRESH MATERIALIZED VIEW)", s.id())
			continue
		}
		dcols := map[string]column{}
		for _, c := range d.Columns {
			dcols[c.Name] = c
		}
		p := tablePair{src: s, dst: d}
		for _, c := range s.Columns {
			dc, ok := dcols[c.Name]
			switch {
			case !ok:
				add(s.id(), "column_missing", "column %q is not on the target", c.Name)
			case dc.Type != c.Type:
				add(s.id(), "column_type", "column %q is %s on the source, %s on the target", c.Name, c.Type, dc.Type)
			default:
				p.cols = append(p.cols, c)
			}
		}
		if len(p.cols) > 0 {
			pairs = append(pairs, p)
		}
	}
	return pairs
}

// compareObjects compares what is not a table's rows or columns:
// privileges, and materialized views (whose pairs join the tables').
func compareObjects(ctx context.Context, src, dst *pgx.Conn, tables []*table, filtered bool, res *DBResult) ([]tablePair, error) {
	if err := checkPrivileges(ctx, src, dst, tables, filtered, res); err != nil {
		return nil, err
	}
	return matviewPairs(ctx, src, dst, filtered, res)
}
