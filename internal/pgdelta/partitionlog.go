package pgdelta

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/pgutil"
)

// A partition taken over by a delta run had changes logged through its
// parent between its attach (or creation) and the take-over. For a table
// attached with rows, the target never had those rows: an update or delete
// of one would find nothing there. The take-over logs the partition's whole
// content after them anyway, so the ones that only concern the partition
// are dropped from the unapplied log, and those that move a row across its
// boundary keep their other half: an update out of the partition becomes an
// insert of the new row, an update into it a delete of the old row.
//
// Which partition a key belongs to is decided by the partition's own
// constraint, evaluated on the logged key. That is done only where no role
// can put its own code on the path: plain key columns of built-in types,
// which no role but a superuser can give casts or operators. Otherwise the
// log is left as it is (an attached table whose rows changed before the
// next delta run then stops it, naming the row).

// pruneTakenOverLog rewrites, in tx, the unapplied log rows of p's table
// that concern partition p and were logged since p's catalog row last
// changed (its attach or creation). It must run before p's TRUNCATE
// trigger is created (that changes the catalog row) and while p is locked
// against writers.
func pruneTakenOverLog(ctx context.Context, tx pgx.Tx, p partitionDef, c captured, lastDone string) error {
	if len(c.Key) == 0 {
		return nil
	}
	// Key columns: their built-in type, or give up.
	rows, err := tx.Query(ctx, `SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod),
			t.typnamespace = 'pg_catalog'::regnamespace AND t.typtype = 'b'
		FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
		WHERE a.attrelid = $1 AND a.attname = ANY($2) AND NOT a.attisdropped`, p.relid, c.Key)
	if err != nil {
		return fmt.Errorf("source: read key columns of %s: %w", p.display(), err)
	}
	types := map[string]string{}
	safe := true
	var name, typ string
	var builtin bool
	if _, err := pgx.ForEachRow(rows, []any{&name, &typ, &builtin}, func() error {
		types[name] = typ
		safe = safe && builtin
		return nil
	}); err != nil {
		return fmt.Errorf("source: read key columns of %s: %w", p.display(), err)
	}
	if !safe || len(types) != len(c.Key) {
		return nil
	}
	// The partition constraint must use nothing but key columns.
	var cons *string
	var onlyKeys bool
	err = tx.QueryRow(ctx, `SELECT pg_catalog.pg_get_partition_constraintdef($1),
			NOT EXISTS (SELECT 1 FROM pg_catalog.pg_partitioned_table pt
				JOIN pg_catalog.pg_partition_ancestors($1) an ON an.relid = pt.partrelid
				WHERE 0 = ANY (pt.partattrs::int2[]) OR pt.partexprs IS NOT NULL
				   OR EXISTS (SELECT 1 FROM unnest(pt.partattrs::int2[]) k(attnum)
				              JOIN pg_catalog.pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = k.attnum
				              WHERE a.attname <> ALL ($2)))`, p.relid, c.Key).Scan(&cons, &onlyKeys)
	if err != nil {
		return fmt.Errorf("source: read the partition constraint of %s: %w", p.display(), err)
	}
	if !onlyKeys {
		return nil
	}
	in := func(arr string) string {
		if cons == nil {
			return "true"
		}
		cols := make([]string, len(c.Key))
		for i, k := range c.Key {
			cols[i] = fmt.Sprintf("(%s)[%d]::%s AS %s", arr, i+1, types[k], pgutil.QuoteIdent(k))
		}
		return fmt.Sprintf("coalesce((SELECT %s FROM (SELECT %s) x), false)", *cons, strings.Join(cols, ", "))
	}
	// since: the partition's catalog row's xmin as a full transaction id.
	_, err = tx.Exec(ctx, fmt.Sprintf(`WITH since AS (
		SELECT CASE WHEN x <= (cur & 4294967295) THEN (cur >> 32 << 32) | x ELSE ((cur >> 32) - 1 << 32) | x END AS txid
		FROM (SELECT c.xmin::text::bigint AS x, pg_catalog.pg_current_xact_id()::text::bigint AS cur
		      FROM pg_catalog.pg_class c WHERE c.oid = $2) s
	), c AS (
		SELECT l.id, l.op, %s AS new_in, %s AS old_in
		FROM kwickmig.log l, since
		WHERE l.tid = $1 AND l.op IN ('I', 'U', 'D')
		  AND l.txid >= pg_catalog.pg_snapshot_xmin($3::pg_catalog.pg_snapshot)
		  AND NOT pg_catalog.pg_visible_in_snapshot(l.txid, $3::pg_catalog.pg_snapshot)
		  AND l.txid::text::bigint >= since.txid
	), dropped AS (
		DELETE FROM kwickmig.log l USING c
		WHERE l.id = c.id AND c.new_in AND (c.op <> 'U' OR c.old_in)
		RETURNING 1
	), moved_out AS (
		UPDATE kwickmig.log l SET op = 'I', old_key = NULL FROM c
		WHERE l.id = c.id AND c.op = 'U' AND c.old_in AND NOT c.new_in
		RETURNING 1
	), moved_in AS (
		UPDATE kwickmig.log l SET op = 'D', key = l.old_key, old_key = NULL, data = NULL FROM c
		WHERE l.id = c.id AND c.op = 'U' AND NOT c.old_in AND c.new_in
		RETURNING 1
	)
	SELECT (SELECT count(*) FROM dropped), (SELECT count(*) FROM moved_out), (SELECT count(*) FROM moved_in)`,
		in("l.key"), in("coalesce(l.old_key, l.key)")), c.TID, p.relid, lastDone)
	if err != nil {
		return fmt.Errorf("source: prune the log of new partition %s: %w", p.display(), err)
	}
	return nil
}
