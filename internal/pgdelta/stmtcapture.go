package pgdelta

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/pgutil"
)

// Statement-level capture. A row trigger runs its function, and an INSERT
// into the log, once per changed row: 12 µs of CPU per row here, five times
// the cost of the UPDATE itself on a narrow table. A statement trigger with
// transition tables (REFERENCING OLD TABLE / NEW TABLE) logs all the rows of
// a statement with one INSERT … SELECT: about 1.5 µs per row for a bulk
// UPDATE, and about the same as a row trigger for a one-row statement.
//
// The log is the same: one row per changed table row, the same text forms,
// the same ops, so the apply, the offline export and import are unchanged.
// What differs:
//
//   - An UPDATE is logged by key, not by pairs of old and new row (PostgreSQL
//     does not tell which old row became which new one): a key present
//     before and after is 'U' (the new row), a key that is gone is 'D', a
//     key that is new is 'I' — deletes first. For a keyed table that is the
//     same change: a key identifies a row. A table without a key logs every
//     old row as 'D' and every new row as 'I'.
//   - AFTER statement triggers fire when the statement ends, after its AFTER
//     row triggers, as the row triggers' own log rows did (AFTER row
//     triggers fire at the end of the statement too): changes made by
//     statements nested in triggers are logged before the statement's own,
//     in both modes. MERGE fires its AFTER statement triggers for DELETE,
//     UPDATE, INSERT in that order, INSERT … ON CONFLICT for UPDATE then
//     INSERT: a key deleted and inserted again by one statement is logged
//     in that order.
//
// Only plain tables use it. Statement triggers are not cloned to partitions
// (a write straight into a partition would fire only the partition's), a
// statement on an inheritance parent puts its children's rows into the
// parent's transition tables, and logical replication's apply fires row
// triggers only. So partitioned tables, tables in an inheritance tree and
// tables a subscription writes into keep row triggers; a table that gains
// inheritance or a subscription after install is reported as drift
// (stmtDrift) before anything of it is applied.

// statementCapture reports whether relid can be captured by statement
// triggers: a plain table, neither parent nor child in an inheritance tree,
// not written by a logical replication subscription.
func statementCapture(ctx context.Context, conn *pgx.Conn, relid uint32) (bool, error) {
	var ok bool
	err := conn.QueryRow(ctx, `SELECT c.relkind = 'r' AND NOT c.relispartition
		AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid OR i.inhparent = c.oid)
		AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_subscription_rel s WHERE s.srrelid = c.oid)
		FROM pg_catalog.pg_class c WHERE c.oid = $1`, relid).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("read table kind: %w", err)
	}
	return ok, nil
}

// stmtTriggerNames are the triggers of a table captured by statement.
var stmtTriggerNames = []string{"kwickmig_capture_delete", "kwickmig_capture_insert", "kwickmig_capture_truncate", "kwickmig_capture_update"}

// rowTriggerNames are the triggers of a table captured by row.
var rowTriggerNames = []string{"kwickmig_capture", "kwickmig_capture_truncate"}

// captureFuncHeader is the CREATE FUNCTION line and settings every capture
// function shares. SECURITY DEFINER, owned by the capture role: application
// roles need no rights on kwickmig, and the function has no rights but
// inserting into the log. The SET clauses fix every setting that changes a
// value's text form, whatever the writer's session set: shortest-exact
// floats, ISO dates in UTC, unambiguous intervals, hex bytea.
func captureFuncHeader(fn string) string {
	return `CREATE FUNCTION ` + fn + `() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET extra_float_digits = 1
SET datestyle = ISO
SET timezone = UTC
SET intervalstyle = postgres
SET bytea_output = hex
`
}

// stmtTriggerSQL generates the statement-level trigger function and
// triggers of one table. Every identifier is quoted and every operator
// qualified; values are written by their output functions (textform.go).
func stmtTriggerSQL(tid int, t table, cols []string, forms map[string]textForm, role string) []string {
	fn := fmt.Sprintf("kwickmig.capture_%d", tid)
	arr := func(rec string, names []string) string { return textArrayOf(forms, rec, names) }
	var upd, del string
	if len(t.Key) > 0 {
		// Keys compared by their text, as the row trigger compared old and
		// new key. The plan is made once per session for whatever sizes the
		// first statement had; the function's settings allow hash joins
		// only, which work (spilling to disk) for one row or millions.
		upd = fmt.Sprintf(`WITH o AS (SELECT %[2]s AS k FROM kwickmig_old o),
		n AS (SELECT %[3]s AS k, %[4]s AS d FROM kwickmig_new n)
		INSERT INTO kwickmig.log (tid, op, key, data)
		SELECT %[1]d, 'D', o.k, NULL FROM o WHERE NOT EXISTS (SELECT FROM n WHERE n.k OPERATOR(pg_catalog.=) o.k)
		UNION ALL
		SELECT %[1]d, CASE WHEN o.k IS NULL THEN 'I' ELSE 'U' END::pg_catalog."char", n.k, n.d FROM n LEFT JOIN o ON o.k OPERATOR(pg_catalog.=) n.k;`,
			tid, arr("o", t.Key), arr("n", t.Key), arr("n", cols))
		del = fmt.Sprintf(`INSERT INTO kwickmig.log (tid, op, key) SELECT %d, 'D', %s FROM kwickmig_old o;`, tid, arr("o", t.Key))
	} else {
		// No key: the apply finds rows by all their columns (old_key).
		upd = fmt.Sprintf(`INSERT INTO kwickmig.log (tid, op, key, old_key, data)
		SELECT %[1]d, 'D', '{}'::pg_catalog.text[], %[2]s, NULL FROM kwickmig_old o
		UNION ALL
		SELECT %[1]d, 'I', '{}'::pg_catalog.text[], NULL, %[3]s FROM kwickmig_new n;`, tid, arr("o", cols), arr("n", cols))
		del = fmt.Sprintf(`INSERT INTO kwickmig.log (tid, op, key, old_key) SELECT %d, 'D', '{}'::pg_catalog.text[], %s FROM kwickmig_old o;`, tid, arr("o", cols))
	}
	body := captureFuncHeader(fn) + fmt.Sprintf(`SET enable_nestloop = off
SET enable_mergejoin = off
AS $kwickmig$
BEGIN
	IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
		INSERT INTO kwickmig.log (tid, op, key, data) SELECT %[1]d, 'I', %[2]s, %[3]s FROM kwickmig_new n;
	ELSIF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN
		%[4]s
	ELSIF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN
		%[5]s
	ELSE
		INSERT INTO kwickmig.log (tid, op, key) VALUES (%[1]d, 'T', ARRAY[TG_TABLE_SCHEMA::pg_catalog.text, TG_TABLE_NAME::pg_catalog.text]);
	END IF;
	RETURN NULL;
END
$kwickmig$`, tid, arr("n", t.Key), arr("n", cols), upd, del)

	q := t.qname()
	stmts := []string{body, fmt.Sprintf("ALTER FUNCTION %s() OWNER TO %s", fn, pgutil.QuoteIdent(role))}
	for _, ev := range []struct{ name, event, ref string }{
		{"kwickmig_capture_insert", "INSERT", "NEW TABLE AS kwickmig_new"},
		{"kwickmig_capture_update", "UPDATE", "OLD TABLE AS kwickmig_old NEW TABLE AS kwickmig_new"},
		{"kwickmig_capture_delete", "DELETE", "OLD TABLE AS kwickmig_old"},
	} {
		stmts = append(stmts,
			fmt.Sprintf("CREATE TRIGGER %s AFTER %s ON %s REFERENCING %s FOR EACH STATEMENT EXECUTE FUNCTION %s()", ev.name, ev.event, q, ev.ref, fn),
			// ALWAYS: also fire for sessions with session_replication_role = replica.
			fmt.Sprintf("ALTER TABLE %s ENABLE ALWAYS TRIGGER %s", q, ev.name))
	}
	return append(stmts,
		fmt.Sprintf("CREATE TRIGGER kwickmig_capture_truncate AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s()", q, fn),
		fmt.Sprintf("ALTER TABLE %s ENABLE ALWAYS TRIGGER kwickmig_capture_truncate", q))
}

// captureSQL is the capture function and triggers for t: by statement
// where statementCapture allows, else by row.
func captureSQL(ctx context.Context, conn *pgx.Conn, tid int, t table, cols []string, forms map[string]textForm, role string) ([]string, error) {
	stmt, err := statementCapture(ctx, conn, t.OID)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.display(), err)
	}
	if stmt {
		return stmtTriggerSQL(tid, t, cols, forms, role), nil
	}
	return triggerSQL(tid, t, cols, forms, role), nil
}

// captureTriggersSQL checks, per captured table, that its capture triggers
// are one complete set (row or statement) and all enabled ALWAYS, and that
// a table captured by statement is still outside inheritance trees and
// subscriptions. It returns the relid and the problem, if any.
const captureTriggersSQL = `
SELECT t.relid,
	CASE
	WHEN coalesce(array_agg(g.tgname::text ORDER BY g.tgname) FILTER (WHERE g.tgenabled = 'A'), '{}') NOT IN ($1::text[], $2::text[])
	  OR count(g.oid) FILTER (WHERE g.tgenabled <> 'A') > 0
		THEN 'capture trigger disabled or dropped: changes may be missing'
	WHEN 'kwickmig_capture_update' = ANY (array_agg(g.tgname::text)) AND EXISTS (
		SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = t.relid OR i.inhparent = t.relid)
		THEN 'joined an inheritance tree or became a partition after install: its statement-level capture may have missed or misfiled changes'
	WHEN 'kwickmig_capture_update' = ANY (array_agg(g.tgname::text)) AND EXISTS (
		SELECT 1 FROM pg_catalog.pg_subscription_rel s WHERE s.srrelid = t.relid)
		THEN 'written by a logical replication subscription since install: its apply fires no statement triggers, changes may be missing'
	ELSE '' END
FROM kwickmig.tables t LEFT JOIN pg_catalog.pg_trigger g ON g.tgrelid = t.relid AND g.tgname::text LIKE 'kwickmig\_capture%'
GROUP BY t.relid`
