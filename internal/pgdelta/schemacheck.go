package pgdelta

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/pgcatalog"
)

// ErrSchemaChanged is matched by errors reporting a source schema change
// since capture install, or a target table that does not match the source.
var ErrSchemaChanged = errors.New("schema changed")

// captured is a table as recorded at capture install.
type captured struct {
	TID  int32
	Cols []string // logged columns, in the order of a log row's data
	// DDL creates the table on the target, for tables added after install.
	DDL string
	table
}

// capturedTables reads kwickmig.tables from the source.
func capturedTables(ctx context.Context, source *pgx.Conn) ([]captured, error) {
	// ddl through to_jsonb: captures installed before it existed lack it.
	rows, err := source.Query(ctx, `SELECT tid, relid, schema_name, table_name, key_cols, cols, fingerprint,
			coalesce(to_jsonb(t) ->> 'ddl', '')
		FROM kwickmig.tables t ORDER BY tid`)
	if err != nil {
		return nil, fmt.Errorf("source: read captured tables: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (captured, error) {
		var c captured
		err := r.Scan(&c.TID, &c.OID, &c.Schema, &c.Name, &c.Key, &c.Cols, &c.Fingerprint, &c.DDL)
		return c, err
	})
}

// checkSourceSchema compares the source's tables with the fingerprints
// stored at install and returns the captured tables, or an error naming
// every table that changed, vanished, was renamed, or appeared since.
func checkSourceSchema(ctx context.Context, source *pgx.Conn) ([]captured, error) {
	d, err := sourceDrift(ctx, source)
	if err != nil {
		return nil, err
	}
	if err := d.err(); err != nil {
		return nil, err
	}
	return d.Captured, nil
}

// drift is what changed on the source since capture install. capture status
// reports it; final-delta and export refuse to run while there is any.
type drift struct {
	Captured []captured
	// Problems names each captured table that changed, vanished or was
	// renamed, or whose capture trigger is disabled, and each uncaptured
	// table ("schema.table (why)"), sorted.
	Problems []string
	// Uncaptured are the tables created after install (not excluded).
	Uncaptured []string
}

func (d drift) err() error {
	if len(d.Problems) == 0 {
		return nil
	}
	return fmt.Errorf("source: %w since capture install: %s; nothing was applied (reinstall capture and redo the bulk copy, or undo the change)",
		ErrSchemaChanged, strings.Join(d.Problems, ", "))
}

// sourceDrift compares the source's tables with what install recorded.
func sourceDrift(ctx context.Context, source *pgx.Conn) (drift, error) {
	var d drift
	caps, err := capturedTables(ctx, source)
	if err != nil {
		return d, err
	}
	d.Captured = caps
	now, err := listTables(ctx, source)
	if err != nil {
		return d, fmt.Errorf("source: %w", err)
	}
	excluded, err := excludedPatterns(ctx, source)
	if err != nil {
		return d, err
	}
	byOID := map[uint32]table{}
	for _, t := range now {
		byOID[t.OID] = t
	}
	seen := map[uint32]bool{}
	for _, c := range caps {
		seen[c.OID] = true
		t, ok := byOID[c.OID]
		switch {
		case !ok:
			d.Problems = append(d.Problems, c.display()+" (dropped)")
		case t.Schema != c.Schema || t.Name != c.Name:
			d.Problems = append(d.Problems, fmt.Sprintf("%s (renamed to %s)", c.display(), t.display()))
		case t.Fingerprint != c.Fingerprint:
			d.Problems = append(d.Problems, c.display()+" (columns changed)")
		case strings.Join(t.Key, ",") != strings.Join(c.Key, ","):
			d.Problems = append(d.Problems, c.display()+" (key changed)")
		}
	}
	// A capture trigger disabled or dropped even for a moment may have let
	// changes through unlogged; a table captured by statement must stay
	// outside inheritance trees and subscriptions (stmtcapture.go).
	rows, err := source.Query(ctx, captureTriggersSQL, rowTriggerNames, stmtTriggerNames)
	if err != nil {
		return d, fmt.Errorf("source: read capture triggers: %w", err)
	}
	var oid uint32
	var problem string
	_, err = pgx.ForEachRow(rows, []any{&oid, &problem}, func() error {
		if t, ok := byOID[oid]; ok && problem != "" {
			d.Problems = append(d.Problems, t.display()+" ("+problem+")")
		}
		return nil
	})
	if err != nil {
		return d, fmt.Errorf("source: read capture triggers: %w", err)
	}
	// A table detached from a captured table is recorded as its partition.
	wasPart := map[uint32]string{}
	var hasRecord bool
	if err := source.QueryRow(ctx, `SELECT to_regclass('kwickmig.partitions') IS NOT NULL`).Scan(&hasRecord); err != nil {
		return d, fmt.Errorf("source: %w", err)
	}
	if hasRecord {
		rows, err := source.Query(ctx, `SELECT relid, parent FROM kwickmig.partitions`)
		if err != nil {
			return d, fmt.Errorf("source: read kwickmig.partitions: %w", err)
		}
		var parent string
		if _, err := pgx.ForEachRow(rows, []any{&oid, &parent}, func() error {
			wasPart[oid] = parent
			return nil
		}); err != nil {
			return d, fmt.Errorf("source: read kwickmig.partitions: %w", err)
		}
	}
	for _, t := range now {
		if seen[t.OID] {
			continue
		}
		if parent, ok := wasPart[t.OID]; ok {
			d.Problems = append(d.Problems, fmt.Sprintf("%s (detached from %s: attach it again, or drop it on both sides)", t.display(), parent))
			continue
		}
		skip := false
		for _, p := range excluded {
			if matchPattern(t, p) {
				skip = true
			}
		}
		if !skip {
			d.Uncaptured = append(d.Uncaptured, t.display())
			d.Problems = append(d.Problems, t.display()+" (created after capture install, not captured)")
		}
	}
	sort.Strings(d.Problems)
	return d, nil
}

// tableInfo is a captured table ready to apply on the target.
type tableInfo struct {
	captured
	upsertSQL string // $1..$n: one text[] per logged column (a plain INSERT without a key)
	deleteSQL string // $1..$k: one text[] per key column
	updateSQL string // keyed tables: like upsertSQL, for rows that must exist (apply_exact.go)
	// Tables without a key (--allow-no-key): one row per statement, found
	// by the text of all its logged columns ($1..$n), new values $n+1..$2n.
	rowDeleteSQL string
	rowUpdateSQL string
}

// prepareTargetTables checks that every captured table exists on the target
// with the same column names as on the source, and builds its statements.
// The error lists every mismatch, before any data moves.
func prepareTargetTables(ctx context.Context, source, target *pgx.Conn, caps []captured) (map[int32]*tableInfo, error) {
	if err := createAddedTables(ctx, target, caps); err != nil {
		return nil, err
	}
	infos := map[int32]*tableInfo{}
	var problems []string
	for _, c := range caps {
		srcCols, err := tableColumns(ctx, source, c.Schema, c.Name)
		if err != nil {
			return nil, fmt.Errorf("source: read columns of %s: %w", c.display(), err)
		}
		tgtCols, err := tableColumns(ctx, target, c.Schema, c.Name)
		if err != nil {
			return nil, fmt.Errorf("target: read columns of %s: %w", c.display(), err)
		}
		ti, problem, err := checkTargetTable(ctx, target, c, srcCols, tgtCols, "copy")
		if err != nil {
			return nil, err
		}
		if problem != "" {
			problems = append(problems, problem)
			continue
		}
		infos[c.TID] = ti
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, fmt.Errorf("target: %w: %s; nothing was applied", ErrSchemaChanged, strings.Join(problems, ", "))
	}
	return infos, nil
}

// checkTargetTable compares one captured table's target columns with the
// source's (srcCols, names only) and builds its apply statements. A mismatch
// is returned as problem text (callers list them all before applying
// anything); err is for failures to read the target. bulk names the step
// that builds the target's indexes ("copy" or "import") for the hint.
func checkTargetTable(ctx context.Context, target *pgx.Conn, c captured, srcCols, tgtCols []column, bulk string) (ti *tableInfo, problem string, err error) {
	if len(tgtCols) == 0 {
		return nil, c.display() + " (missing on target)", nil
	}
	if a, b := colNames(srcCols), colNames(tgtCols); a != b {
		return nil, fmt.Sprintf("%s (source columns %s, target columns %s)", c.display(), a, b), nil
	}
	if len(c.Key) > 0 {
		ok, err := hasUniqueIndex(ctx, target, c.table)
		if err != nil {
			return nil, "", fmt.Errorf("target: read indexes of %s: %w", c.display(), err)
		}
		if !ok {
			return nil, fmt.Sprintf("%s (no unique index on (%s) on the target: did the bulk %s finish its indexes?)",
				c.display(), strings.Join(c.Key, ", "), bulk), nil
		}
	}
	ti, err = newTableInfo(c, tgtCols)
	if err != nil {
		return nil, err.Error(), nil
	}
	return ti, "", nil
}

func colNames(cols []column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	sort.Strings(names)
	return "(" + strings.Join(names, ", ") + ")"
}

// hasUniqueIndex reports whether t on conn has a valid, non-partial unique
// index on exactly t.Key, which the apply's ON CONFLICT and key lookups need.
func hasUniqueIndex(ctx context.Context, conn *pgx.Conn, t table) (bool, error) {
	var ok bool
	err := conn.QueryRow(ctx, `
		SELECT EXISTS (
			SELECT 1 FROM pg_index i
			JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique AND i.indisvalid
			  AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indnkeyatts = cardinality($3::text[])
			  AND (SELECT array_agg(a.attname::text ORDER BY a.attname)
			       FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
			       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
			       WHERE k.ord <= i.indnkeyatts) = (SELECT array_agg(x ORDER BY x) FROM unnest($3::text[]) x))`,
		t.Schema, t.Name, t.Key).Scan(&ok)
	return ok, err
}

// CapturedTables returns the tables capture install and capture add put
// under capture, by OID (db copy compares them with what it copies).
func CapturedTables(ctx context.Context, source *pgx.Conn) (map[uint32]pgcatalog.Name, error) {
	caps, err := capturedTables(ctx, source)
	if err != nil {
		return nil, err
	}
	out := make(map[uint32]pgcatalog.Name, len(caps))
	for _, c := range caps {
		out[c.OID] = pgcatalog.Name{Schema: c.Schema, Table: c.Name}
	}
	return out, nil
}
