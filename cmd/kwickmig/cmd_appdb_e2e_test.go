package main

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
)

// appdbWorkload is a day of the application after install: customers join,
// move and leave (SET NULL on their receipts), a store is renumbered
// (cascading to customers and receipts), receipts are re-keyed, moved to
// another month and deleted (cascading to their lines), the next month's
// partition is created and filled, and enum, array, bytea and
// tsvector-bearing rows are updated (the BEFORE triggers re-stamp them, the
// AFTER triggers write audit rows). The nightly job refreshes the view.
var appdbWorkload = []string{
	`INSERT INTO shop.customers (email, full_name, city, home_store, fav_items, avatar)
		VALUES ('new1@example.org', 'Zoé Martin', 'Grenoble', 1, '{4,8}', '\x00ff10'),
		       ('new2@example.org', 'Léo Petit', NULL, NULL, NULL, NULL)`,
	`UPDATE shop.customers SET city = 'Lyon', tier = tier + 1, fav_items = fav_items || 99,
		avatar = coalesce(avatar, '') || '\xdeadbeef'::bytea, prefs = prefs || '{"news": false}' WHERE id % 10 = 0`,
	`UPDATE shop.customers SET full_name = 'Customer renamed ' || id WHERE id BETWEEN 41 AND 45`,
	`DELETE FROM shop.customers WHERE id IN (7, 8, 9)`,
	`UPDATE shop.stores SET id = 30, tags = array_append(tags, 'renovated') WHERE id = 3`,
	`UPDATE shop.receipts SET id = id + 100000 WHERE id IN (5, 6, 305)`,
	`UPDATE shop.receipts SET sold_on = DATE '2026-02-20', note = 'moved' WHERE id IN (10, 11)`,
	`DELETE FROM shop.receipts WHERE id IN (20, 21, 22)`,
	`UPDATE shop.receipts SET paid_with = 'voucher', signature = NULL, note = 'refunded' WHERE id % 50 = 0`,
	`UPDATE shop.receipts SET signature = signature || '\x01'::bytea, paid_with = 'mobile' WHERE id % 45 = 1`,
	`CREATE TABLE shop.receipts_2026_03 PARTITION OF shop.receipts FOR VALUES FROM ('2026-03-01') TO ('2026-04-01')`,
	`INSERT INTO shop.receipts (id, sold_on, store_id, customer_id, paid_with, total, sold_at)
		SELECT nextval('shop.receipt_no'), DATE '2026-03-01' + g % 10, 30, g + 50, 'card', g * 2.5,
			TIMESTAMPTZ '2026-03-01 09:00:00+01' + make_interval(days => g % 10, mins => g) FROM generate_series(1, 40) g`,
	`INSERT INTO shop.receipt_lines (receipt_id, sold_on, line_no, sku, qty, unit_price, discounts)
		SELECT id, sold_on, 1, 'SKU-MAR', 1, total, '{0.2}' FROM shop.receipts WHERE sold_on >= '2026-03-01'`,
	`DELETE FROM shop.receipt_lines WHERE line_no = 2 AND receipt_id % 7 = 0`,
	`UPDATE shop.receipt_lines SET discounts = discounts || 0.15::numeric, qty = -qty WHERE receipt_id % 13 = 0 AND line_no = 2`,
	`REFRESH MATERIALIZED VIEW shop.daily_sales`,
}

// TestAppDBEndToEnd: a retail schema with what application databases carry
// (testdata/appdb: monthly partitions, an enum, a domain, tsvector kept by
// a BEFORE trigger, arrays, bytea, jsonb, BEFORE and AFTER triggers,
// cascading keys, a materialized view, grants and default privileges to an
// application role) goes through the real CLI: capture install, copy, a
// mixed workload including a partition created after install, final-delta
// twice (the second applies nothing), and verify db exits 0: rows,
// privileges and the view identical. The application's roles then work on
// the target. It runs with the superuser as the target (replica mode) and
// with a target role that owns the application's tables and nothing more
// (no superuser: the apply disables the triggers and re-adds the keys).
func TestAppDBEndToEnd(t *testing.T) {
	t.Parallel()
	for _, owner := range []bool{false, true} {
		name := "superuser target"
		if owner {
			name = "table owner target"
		}
		t.Run(name, func(t *testing.T) { appdbEndToEnd(t, owner) })
	}
}

func appdbEndToEnd(t *testing.T, restricted bool) {
	e := kmtest.PG(t)
	ctx := context.Background()
	rw, ro := kmtest.RandName("kw_app_rw_"), kmtest.RandName("kw_app_ro_")
	for _, u := range []string{e.SourceURL, e.TargetURL} {
		kmtest.Exec(t, u, "CREATE ROLE "+rw+" LOGIN PASSWORD 'pw'", "CREATE ROLE "+ro+" LOGIN PASSWORD 'pw'")
		t.Cleanup(func() {
			// the roles hold grants in the database: it goes first
			// (kmtest.PG's own drop, which runs after this, finds it gone)
			kmtest.Exec(t, strings.Replace(u, "/"+e.DBName, "/postgres", 1),
				"DROP DATABASE IF EXISTS "+e.DBName+" WITH (FORCE)", "DROP ROLE "+rw, "DROP ROLE "+ro)
		})
	}
	roles := strings.NewReplacer("app_rw", rw, "app_ro", ro)
	for _, f := range []string{"schema.sql", "seed.sql"} {
		b, err := os.ReadFile(filepath.Join("testdata", "appdb", f))
		if err != nil {
			t.Fatal(err)
		}
		kmtest.Exec(t, e.SourceURL, roles.Replace(string(b)))
	}
	ck := filepath.Join(t.TempDir(), "kwickmig.db")
	run := func(step string, want int, args ...string) string {
		t.Helper()
		code, out, errs := runCLI(t, ctx, args...)
		if code != want {
			t.Fatalf("%s: exit %d, want %d\n%s%s", step, code, want, out, errs)
		}
		return out
	}
	out := run("capture install", 0, "db", "capture", "install", "--source", e.SourceURL, "--checkpoint", ck)
	// stores, customers, receipts (with its partitions), receipt_lines, audit.events
	if !strings.Contains(out, "capture installed on 5 tables") {
		t.Fatalf("capture install:\n%s", out)
	}
	// The shop trades between install and the copy's snapshot: these
	// changes are both in the log and in the copy, and must land once.
	kmtest.Exec(t, e.SourceURL,
		`UPDATE shop.customers SET tier = tier + 1, fav_items = fav_items || 7 WHERE id % 9 = 0`,
		`UPDATE shop.receipts SET id = id + 200000 WHERE id IN (100, 101)`,
		`DELETE FROM shop.receipts WHERE id = 102`,
		// the copy fills the view on the target from the copied rows
		`REFRESH MATERIALIZED VIEW shop.daily_sales`)
	// (Found by this test: a foreign key on a partitioned table made the
	// copy fail on PostgreSQL < 18, SQLSTATE 42809.)
	if code, out, errs := runCLI(t, ctx, "db", "copy", "--source", e.SourceURL, "--target", e.TargetURL, "--checkpoint", ck); code != 0 {
		t.Fatalf("copy: exit %d, want 0\n%s%s", code, out, errs)
	}
	if got, want := appdbRows(t, e.TargetURL), appdbRows(t, e.SourceURL); got != want {
		t.Fatalf("after copy the target differs:\n%s\nsource:\n%s", got, want)
	}

	target := e.TargetURL
	if restricted {
		target = appdbTargetOwner(t, e)
	}
	auditBefore := countRows(t, e.SourceURL, `SELECT count(*) FROM audit.events`)
	for _, s := range appdbWorkload {
		kmtest.Exec(t, e.SourceURL, s)
	}
	if n := countRows(t, e.SourceURL, `SELECT count(*) FROM audit.events`); n <= auditBefore {
		t.Fatalf("the workload wrote no audit rows (%d before, %d after)", auditBefore, n)
	}
	if appdbRows(t, e.TargetURL) == appdbRows(t, e.SourceURL) {
		t.Fatal("the workload changed nothing the comparison sees")
	}

	out = run("final-delta", 0, "db", "final-delta", "--source", e.SourceURL, "--target", target, "--checkpoint", ck)
	if !strings.Contains(out, "round 1: applied ") || strings.Contains(out, "round 1: applied 0 changes") {
		t.Fatalf("final-delta applied nothing:\n%s", out)
	}
	out = run("second final-delta", 0, "db", "final-delta", "--source", e.SourceURL, "--target", target, "--checkpoint", ck)
	if !strings.Contains(out, "round 2: applied 0 changes") {
		t.Fatalf("second final-delta:\n%s", out)
	}
	if got, want := appdbRows(t, e.TargetURL), appdbRows(t, e.SourceURL); got != want {
		t.Fatalf("after final-delta the target differs:\n%s\nsource:\n%s", got, want)
	}
	// The apply as the table owner disables the user triggers around each
	// batch: they are all back on afterwards, as on the source.
	const enabled = `SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgenabled = 'O'
		AND tgrelid::regclass::text LIKE ANY (ARRAY['shop.%', 'audit.%'])`
	if got, want := countRows(t, e.TargetURL, enabled), countRows(t, e.SourceURL, enabled); got != want || want == 0 {
		t.Errorf("%d user triggers enabled on the target after final-delta, %d on the source", got, want)
	}
	// (Found by this test: a key referencing a partitioned table was left
	// NOT VALID per partition, and a partition created after install
	// reached the target without its grants; both made this exit 2.)
	if code, out, errs := runCLI(t, ctx, "verify", "db", "--source", e.SourceURL, "--target", e.TargetURL, "--checkpoint", ""); code != 0 {
		t.Fatalf("verify db: exit %d, want 0\n%s%s", code, out, errs)
	}

	// The target's triggers did not fire on the replayed rows: the audit
	// trail is the source's, row for row (compared above), and no
	// updated_at was re-stamped (also compared). The roles work there.
	as := func(role string) string {
		u, err := url.Parse(e.TargetURL)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(role, "pw")
		return u.String()
	}
	if n := countRows(t, as(rw), `SELECT count(*) FROM shop.receipts WHERE sold_on >= '2026-03-01'`); n != 40 {
		t.Errorf("as %s: %d March receipts, want 40", rw, n)
	}
	if n := countRows(t, as(rw), `SELECT shop.receipt_total(100005, sold_on)::bigint FROM shop.receipts WHERE id = 100005`); n <= 0 {
		t.Errorf("as %s: receipt_total of the re-keyed receipt is %d", rw, n)
	}
	kmtest.Exec(t, as(rw), `BEGIN;
		INSERT INTO shop.receipts (id, sold_on, store_id, paid_with, total, sold_at)
			VALUES (nextval('shop.receipt_no'), '2026-03-31', 1, 'cash', 3, now());
		INSERT INTO shop.customers (email, full_name) VALUES ('app@example.org', 'App');
		ROLLBACK`)
	if n := countRows(t, as(ro), `SELECT count(*) FROM shop.daily_sales`); n == 0 {
		t.Errorf("as %s: the materialized view is empty on the target", ro)
	}
	checks := []string{
		`SELECT (NOT has_table_privilege('` + rw + `', 'shop.customers', 'DELETE'))::int`,
		`SELECT (NOT has_column_privilege('` + ro + `', 'audit.events', 'old_row', 'SELECT'))::int`,
		`SELECT (NOT has_function_privilege('` + ro + `', 'shop.receipt_total(bigint, date)', 'EXECUTE'))::int`,
	}
	checks = append(checks, `SELECT has_table_privilege('`+ro+`', 'shop.receipts_2026_03', 'SELECT')::int`)
	for _, q := range checks {
		if countRows(t, e.TargetURL, q) != 1 {
			t.Errorf("target privileges: %s is false", q)
		}
	}
}

// appdbTargetOwner hands every relation of the application and kwickmig's
// bookkeeping on the target, and the application's schemas, to a new role without superuser, CREATEDB or
// CREATEROLE, and returns the target URL as that role.
func appdbTargetOwner(t *testing.T, e *kmtest.PGEnv) string {
	t.Helper()
	role := kmtest.RandName("kw_owner_")
	kmtest.Exec(t, e.TargetURL, "CREATE ROLE "+role+" LOGIN PASSWORD 'pw' NOSUPERUSER")
	t.Cleanup(func() {
		// the role owns the database's objects: the database goes first
		kmtest.Exec(t, strings.Replace(e.TargetURL, "/"+e.DBName, "/postgres", 1),
			"DROP DATABASE IF EXISTS "+e.DBName+" WITH (FORCE)", "DROP ROLE "+role)
	})
	kmtest.Exec(t, e.TargetURL, `DO $$
	DECLARE r record;
	BEGIN
		FOR r IN SELECT c.oid::regclass AS rel, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname IN ('shop', 'audit', 'kwickmig') AND c.relkind IN ('r', 'p', 'm', 'S')
			AND NOT (c.relkind = 'S' AND EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')))
		LOOP
			EXECUTE format('ALTER %s %s OWNER TO `+role+`',
				CASE r.relkind WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, r.rel);
		END LOOP;
	END$$`, "ALTER SCHEMA kwickmig OWNER TO "+role,
		// it creates the partitions added on the source after install
		"ALTER SCHEMA shop OWNER TO "+role, "ALTER SCHEMA audit OWNER TO "+role)
	if n := countRows(t, e.TargetURL, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname IN ('shop', 'audit') AND c.relkind IN ('r', 'p', 'm') AND c.relowner <> '`+role+`'::regrole`); n != 0 {
		t.Fatalf("%d application relations not owned by %s on the target", n, role)
	}
	u, err := url.Parse(e.TargetURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, "pw")
	return u.String()
}

// appdbRows renders every table and the materialized view of the appdb
// schema in key order, so two databases compare as two strings.
func appdbRows(t *testing.T, dbURL string) string {
	t.Helper()
	c, err := pgxConnect(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var b strings.Builder
	for _, q := range []string{
		`SELECT string_agg(x::text, E'\n' ORDER BY id) FROM shop.stores x`,
		`SELECT string_agg(x::text, E'\n' ORDER BY id) FROM shop.customers x`,
		`SELECT string_agg(tableoid::regclass::text || ' ' || x::text, E'\n' ORDER BY id, sold_on) FROM shop.receipts x`,
		`SELECT string_agg(x::text, E'\n' ORDER BY receipt_id, sold_on, line_no) FROM shop.receipt_lines x`,
		`SELECT string_agg(x::text, E'\n' ORDER BY id) FROM audit.events x`,
		`SELECT string_agg(x::text, E'\n' ORDER BY sold_on, store, paid_with) FROM shop.daily_sales x`,
		`SELECT last_value || ' ' || is_called FROM shop.receipt_no`,
	} {
		var s *string
		if err := c.QueryRow(context.Background(), q).Scan(&s); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if s != nil {
			b.WriteString(*s)
		}
		b.WriteString("\n--\n")
	}
	return b.String()
}
