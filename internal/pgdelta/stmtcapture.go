package pgdelta

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/pgutil"
)

// Statement-level capture (capture install --statement-triggers). A row
// trigger runs its function, and an INSERT into the log, once per changed
// row: 12 µs of CPU per row here, five times the cost of the UPDATE itself
// on a narrow table. A statement trigger with transition tables
// (REFERENCING OLD TABLE / NEW TABLE) logs all the rows of a statement with
// one INSERT … SELECT: 3–4 µs per row for a bulk UPDATE. For a one-row
// statement it costs more than a row trigger (the transition tables and
// their scans: about 20 µs against 11 µs of CPU here, and 0.55× against
// 0.65× the CPU per pgbench transaction without capture), so row triggers
// stay the default and statement triggers are for sources whose writes
// come in big statements (batch jobs, bulk UPDATEs).
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

// canonicalSettingsSQL is true when the session's settings already give
// every value the text form the SET clauses of captureFuncHeader pin: ISO
// dates (the date order only matters for other styles), a zone that is
// UTC all year, shortest-exact floats (any extra_float_digits above 0
// gives the same text), hex bytea, postgres intervals.
const canonicalSettingsSQL = `pg_catalog.starts_with(pg_catalog.current_setting('DateStyle'), 'ISO,')
		AND pg_catalog.lower(pg_catalog.current_setting('TimeZone')) OPERATOR(pg_catalog.=) ANY ('{utc,etc/utc,gmt,etc/gmt,uct,etc/uct,universal,etc/universal,zulu,etc/zulu}'::pg_catalog.text[])
		AND pg_catalog.current_setting('extra_float_digits')::pg_catalog.int4 OPERATOR(pg_catalog.>) 0
		AND pg_catalog.current_setting('bytea_output') OPERATOR(pg_catalog.=) 'hex'
		AND pg_catalog.current_setting('IntervalStyle') OPERATOR(pg_catalog.=) 'postgres'`

// settingsPrologue (with a "saved pg_catalog.text[]" variable) gives the
// statements after it the canonical text-form settings: when the writer's
// session has other ones, it saves them and sets the canonical ones for the
// transaction; settingsEpilogue puts the writer's back.
var settingsPrologue = `IF NOT (` + canonicalSettingsSQL + `) THEN
		saved := ARRAY[pg_catalog.current_setting('DateStyle'), pg_catalog.current_setting('TimeZone'),
			pg_catalog.current_setting('extra_float_digits'), pg_catalog.current_setting('bytea_output'),
			pg_catalog.current_setting('IntervalStyle')];
		PERFORM pg_catalog.set_config('DateStyle', 'ISO', true), pg_catalog.set_config('TimeZone', 'UTC', true),
			pg_catalog.set_config('extra_float_digits', '1', true), pg_catalog.set_config('bytea_output', 'hex', true),
			pg_catalog.set_config('IntervalStyle', 'postgres', true);
	END IF;
`

const settingsEpilogue = `IF saved IS NOT NULL THEN
		-- back to the writer's own (still transaction-local: a rollback
		-- or commit ends them as it would have anyway)
		PERFORM pg_catalog.set_config('DateStyle', saved[1], true), pg_catalog.set_config('TimeZone', saved[2], true),
			pg_catalog.set_config('extra_float_digits', saved[3], true), pg_catalog.set_config('bytea_output', saved[4], true),
			pg_catalog.set_config('IntervalStyle', saved[5], true);
	END IF;
`

// stmtTriggerSQL generates the statement-level trigger function and
// triggers of one table. Every identifier is quoted, every name of a type,
// function or operator schema-qualified (the session's search_path cannot
// reach into the function); values are written by their output functions
// (textform.go).
//
// pinned: the function fixes search_path and the text-form settings with
// SET clauses, as the row trigger functions do. Those cost every call a
// save and restore of seven settings (a third of a one-row statement's
// capture cost), so for tables whose column types have text forms that
// depend on nothing but the five settings checked by canonicalSettingsSQL
// (fastTextForms) the function has no SET clause: when the writer's session
// already has the canonical settings, as most do, it logs right away;
// otherwise it sets them for the transaction (set_config(…, true)), logs,
// and puts the session's values back, so the writer sees no change.
func stmtTriggerSQL(tid int, t table, cols []string, forms map[string]textForm, role string, pinned, native bool) []string {
	fn := fmt.Sprintf("kwickmig.capture_%d", tid)
	arr := func(rec string, names []string) string { return textArrayOf(forms, rec, names) }
	// A one-row UPDATE (most of them) pairs its old and new row directly,
	// logged as the row trigger logs it, in one statement (guarded by the
	// transition table having no second row). Several rows are logged by key
	// (see above), in a statement planned for the transition tables' real
	// sizes (EXECUTE): a plan cached for one row would join a million by
	// nested loop.
	var one, many, del string
	if len(t.Key) > 0 {
		one = fmt.Sprintf(`INSERT INTO kwickmig.log (tid, op, key, old_key, data)
			SELECT %[1]d, 'U', n.k, CASE WHEN n.k OPERATOR(pg_catalog.=) o.k THEN NULL ELSE o.k END, n.d
			FROM (SELECT %[2]s AS k, %[3]s AS d FROM kwickmig_new n) n, (SELECT %[4]s AS k FROM kwickmig_old o) o
			WHERE NOT EXISTS (SELECT FROM kwickmig_old OFFSET 1);`,
			tid, arr("n", t.Key), arr("n", cols), arr("o", t.Key))
		// Most multi-row UPDATEs change no key: every new key is an old
		// one (old and new have as many rows, keys are unique), and the new
		// rows are logged as they are. The check compares the keys' text,
		// or the key columns themselves where equal values always have the
		// same text (nativeKey): integers, uuid, text with a deterministic
		// collation — a far cheaper join than on text arrays.
		match := fmt.Sprintf("%s OPERATOR(pg_catalog.=) %s", arr("o", t.Key), arr("n", t.Key))
		if native {
			var conds []string
			for _, k := range t.Key {
				q := pgutil.QuoteIdent(k)
				conds = append(conds, fmt.Sprintf("o.%[1]s OPERATOR(pg_catalog.=) n.%[1]s", q))
			}
			match = strings.Join(conds, " AND ")
		}
		// A count, not EXISTS: EXISTS is planned for its first row, by a
		// nested loop that scans the old rows once per new row when no key
		// moved (the usual case).
		check := fmt.Sprintf(`SELECT pg_catalog.count(*) OPERATOR(pg_catalog.>) 0 FROM kwickmig_new n WHERE NOT EXISTS (SELECT FROM kwickmig_old o WHERE %s)`, match)
		moved := fmt.Sprintf(`WITH o AS (SELECT %[2]s AS k FROM kwickmig_old o),
	n AS (SELECT %[3]s AS k, %[4]s AS d FROM kwickmig_new n)
INSERT INTO kwickmig.log (tid, op, key, data)
SELECT %[1]d, 'D', o.k, NULL FROM o WHERE NOT EXISTS (SELECT FROM n WHERE n.k OPERATOR(pg_catalog.=) o.k)
UNION ALL
SELECT %[1]d, CASE WHEN o.k IS NULL THEN 'I' ELSE 'U' END::pg_catalog."char", n.k, n.d FROM n LEFT JOIN o ON o.k OPERATOR(pg_catalog.=) n.k`,
			tid, arr("o", t.Key), arr("n", t.Key), arr("n", cols))
		many = fmt.Sprintf(`EXECUTE %[1]s INTO moved;
			IF moved THEN
				EXECUTE %[2]s;
			ELSE
				INSERT INTO kwickmig.log (tid, op, key, data) SELECT %[3]d, 'U', %[4]s, %[5]s FROM kwickmig_new n;
			END IF;`, quoteLiteral(check), quoteLiteral(moved), tid, arr("n", t.Key), arr("n", cols))
		del = fmt.Sprintf(`INSERT INTO kwickmig.log (tid, op, key) SELECT %d, 'D', %s FROM kwickmig_old o;`, tid, arr("o", t.Key))
	} else {
		// No key: the apply finds rows by all their columns (old_key).
		one = fmt.Sprintf(`INSERT INTO kwickmig.log (tid, op, key, old_key, data)
			SELECT %[1]d, 'U', '{}'::pg_catalog.text[], o.r, n.r
			FROM (SELECT %[2]s AS r FROM kwickmig_new n) n, (SELECT %[3]s AS r FROM kwickmig_old o) o
			WHERE NOT EXISTS (SELECT FROM kwickmig_old OFFSET 1);`,
			tid, arr("n", cols), arr("o", cols))
		many = fmt.Sprintf(`INSERT INTO kwickmig.log (tid, op, key, old_key, data)
			SELECT %[1]d, 'D', '{}'::pg_catalog.text[], %[2]s, NULL FROM kwickmig_old o
			UNION ALL
			SELECT %[1]d, 'I', '{}'::pg_catalog.text[], NULL, %[3]s FROM kwickmig_new n;`, tid, arr("o", cols), arr("n", cols))
		del = fmt.Sprintf(`INSERT INTO kwickmig.log (tid, op, key, old_key) SELECT %d, 'D', '{}'::pg_catalog.text[], %s FROM kwickmig_old o;`, tid, arr("o", cols))
	}
	header := captureFuncHeader(fn)
	if !pinned {
		header = `CREATE FUNCTION ` + fn + `() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
`
	}
	// No JIT: the static statements are planned once per session, for the
	// transition tables of the first call; a plan made for a million rows
	// would carry JIT (a second of compiling) into every later one-row
	// statement. One setting to save and restore, not seven.
	header += "SET jit = off\n"
	body := fmt.Sprintf(`DECLARE
	moved pg_catalog.bool;
	saved pg_catalog.text[];
BEGIN
	%[6]s	IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
		INSERT INTO kwickmig.log (tid, op, key, data) SELECT %[1]d, 'I', %[2]s, %[3]s FROM kwickmig_new n;
	ELSIF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN
		%[4]s
		-- nested: FOUND alone is a simple expression, EXISTS is a query
		IF NOT FOUND THEN
			IF EXISTS (SELECT FROM kwickmig_old) THEN
				%[7]s
			END IF;
		END IF;
	ELSIF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN
		%[5]s
	ELSE
		INSERT INTO kwickmig.log (tid, op, key) VALUES (%[1]d, 'T', ARRAY[TG_TABLE_SCHEMA::pg_catalog.text, TG_TABLE_NAME::pg_catalog.text]);
	END IF;
	%[8]s	RETURN NULL;
END
`, tid, arr("n", t.Key), arr("n", cols), one, del, settingsPrologue, many, settingsEpilogue)

	q := t.qname()
	stmts := []string{header + "AS " + dollarQuote(body), handOver(fn, role)}
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

// quoteLiteral quotes s as an escape string constant: the same text
// whatever standard_conforming_strings says.
func quoteLiteral(s string) string {
	return "E'" + strings.NewReplacer(`\`, `\\`, "'", "''").Replace(s) + "'"
}

// dollarQuote quotes a function body with a dollar tag it does not contain
// (a quoted column name may contain any text, "$kwickmig$" too).
func dollarQuote(body string) string {
	tag := "$kwickmig$"
	for i := 1; strings.Contains(body, tag); i++ {
		tag = fmt.Sprintf("$kwickmig%d$", i)
	}
	return tag + "\n" + body + tag
}

// stmtKindsSQL reads, for relid and its key columns ($2), fastTextFormsSQL
// and nativeKeySQL.
const stmtKindsSQL = `SELECT (` + fastTextFormsSQL + `), (` + nativeKeySQL + `)`

// nativeKeySQL is true when every key column ($2) of relid has a type
// whose equal values always print the same text: integers, uuid, and
// text or varchar with a deterministic collation (numeric 1.0 = 1.00 and
// a case-insensitive collation's 'A' = 'a' do not).
const nativeKeySQL = `SELECT coalesce(bool_and(
		a.atttypid IN ('pg_catalog.int2'::pg_catalog.regtype, 'pg_catalog.int4'::pg_catalog.regtype, 'pg_catalog.int8'::pg_catalog.regtype, 'pg_catalog.uuid'::pg_catalog.regtype)
		OR (a.atttypid IN ('pg_catalog.text'::pg_catalog.regtype, 'pg_catalog.varchar'::pg_catalog.regtype)
			AND coalesce((SELECT l.collisdeterministic FROM pg_catalog.pg_collation l WHERE l.oid = a.attcollation), false))), false)
	FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1 AND a.attname = ANY ($2::pg_catalog.text[]) AND NOT a.attisdropped`

// fastTextFormsSQL is true when every logged column of relid has a type
// whose output depends on nothing but the settings canonicalSettingsSQL
// checks (or on nothing at all): these built-in types, enums, and arrays
// and domains of them. Anything else (reg* types print names by the
// search_path, money by lc_monetary, composites and ranges of anything,
// extension types) keeps the pinned function.
const fastTextFormsSQL = `
WITH RECURSIVE ty AS (
	SELECT a.atttypid AS t FROM pg_catalog.pg_attribute a
	WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
  UNION
	SELECT CASE WHEN y.typtype = 'd' THEN y.typbasetype ELSE y.typelem END
	FROM ty JOIN pg_catalog.pg_type y ON y.oid = ty.t
	WHERE y.typtype = 'd' OR (y.typcategory = 'A' AND y.typelem <> 0 AND y.typsubscript = 'pg_catalog.array_subscript_handler'::pg_catalog.regproc)
)
SELECT coalesce(bool_and(
	y.typtype = 'e' OR y.typtype = 'd'
	OR (y.typcategory = 'A' AND y.typelem <> 0 AND y.typsubscript = 'pg_catalog.array_subscript_handler'::pg_catalog.regproc)
	OR y.oid = ANY ('{bool,int2,int4,int8,numeric,float4,float8,text,varchar,bpchar,name,char,bytea,date,time,timetz,timestamp,timestamptz,interval,uuid,json,jsonb,inet,cidr,macaddr,macaddr8,bit,varbit,oid,tsvector,tsquery,xml}'::pg_catalog.regtype[]::pg_catalog.oid[])
), true)
FROM ty JOIN pg_catalog.pg_type y ON y.oid = ty.t`

// captureBy is kwickmig.meta's capture_by: how install captures tables.
func captureBy(byStatement bool) string {
	if byStatement {
		return "statement where possible"
	}
	return "row"
}

// captureSQL is the capture function and triggers for t: by statement
// where byStatement asks and statementCapture allows, else by row.
func captureSQL(ctx context.Context, conn *pgx.Conn, tid int, t table, cols []string, forms map[string]textForm, role string, byStatement bool) ([]string, error) {
	stmt := false
	if byStatement {
		var err error
		if stmt, err = statementCapture(ctx, conn, t.OID); err != nil {
			return nil, fmt.Errorf("%s: %w", t.display(), err)
		}
	}
	var fast, native bool
	if err := conn.QueryRow(ctx, stmtKindsSQL, t.OID, t.Key).Scan(&fast, &native); err != nil {
		return nil, fmt.Errorf("%s: read column types: %w", t.display(), err)
	}
	if stmt {
		return stmtTriggerSQL(tid, t, cols, forms, role, !fast, native), nil
	}
	return triggerSQL(tid, t, cols, forms, role, !fast), nil
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
