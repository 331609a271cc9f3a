package pgdelta

import (
	"errors"
	"fmt"
	"github.com/kwick/kwickmig/internal/pgutil"
	"strings"
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
)

// TestStatementCaptureExact: plain tables are captured by statement
// triggers (transition tables), a partitioned table by row triggers; multi-
// row statements of every kind — key changes, a key deleted and inserted
// again by one MERGE, upserts, a keyless table with duplicate rows, many
// changes to one row within a transaction and a large UPDATE after the
// session's plan was made for one row — reach the target exactly, in order.
func TestStatementCaptureExact(t *testing.T) {
	t.Parallel()
	e := newEnv(t,
		`CREATE TABLE acc (id int PRIMARY KEY, owner text NOT NULL, bal numeric(12,2), at timestamptz, f float8)`,
		`CREATE TABLE dup (a int, b text)`,                // no key: full-row matching
		`CREATE TABLE nk (k numeric PRIMARY KEY, v text)`, // equal keys may print differently
		`CREATE TABLE ev (id int NOT NULL, day date NOT NULL, v text, PRIMARY KEY (id, day)) PARTITION BY RANGE (day)`,
		`CREATE TABLE ev_1 PARTITION OF ev FOR VALUES FROM ('2026-01-01') TO ('2026-02-01')`,
		`CREATE TABLE ev_2 PARTITION OF ev FOR VALUES FROM ('2026-02-01') TO ('2026-03-01')`)
	kmtest.Exec(t, e.SourceURL,
		`INSERT INTO acc SELECT g, 'o' || g, g * 1.5, '2026-01-01 10:00+02'::timestamptz + g * interval '1 hour', g / 3.0 FROM generate_series(1, 2000) g`,
		`INSERT INTO dup SELECT g % 5, 'x' FROM generate_series(1, 50) g`,
		`INSERT INTO nk SELECT g::numeric(10,1), 'n' || g FROM generate_series(1, 100) g`,
		`INSERT INTO ev SELECT g, '2026-01-01'::date + (g % 50), 'v' || g FROM generate_series(1, 300) g`)
	e.install(InstallOptions{AllowNoKey: true, StatementTriggers: true})
	var stmtTables, rowTables string
	if err := e.src().QueryRow(testCtx(t), `SELECT
			string_agg(DISTINCT tgrelid::regclass::text, ',') FILTER (WHERE tgname = 'kwickmig_capture_update'),
			string_agg(DISTINCT tgrelid::regclass::text, ',') FILTER (WHERE tgname = 'kwickmig_capture')
		FROM pg_trigger WHERE tgname LIKE 'kwickmig%' AND NOT tgisinternal AND tgparentid = 0`).Scan(&stmtTables, &rowTables); err != nil {
		t.Fatal(err)
	}
	if stmtTables != "acc,dup,nk" || rowTables != "ev" {
		t.Fatalf("captured by statement: %q, by row: %q; want acc,dup,nk and ev", stmtTables, rowTables)
	}
	e.bulkCopy(nil)
	// One session: its plans are made for the one-row transition tables of
	// the first statements, then statements write thousands of rows (the
	// plan must stay exact, and not quadratic: the deadline would catch
	// that). Its own settings must not change the logged text.
	ctx := testCtx(t)
	c := e.src()
	for _, s := range []string{
		`SET timezone = 'America/New_York'`, `SET datestyle = 'SQL, DMY'`, `SET extra_float_digits = -3`, `SET intervalstyle = 'sql_standard'`,
		`UPDATE acc SET bal = bal + 1 WHERE id = 1`,
		`DELETE FROM acc WHERE id = 2`,
		`INSERT INTO acc VALUES (2, 'again', 2.5, now(), 0.1)`,
		`UPDATE dup SET b = 'y' WHERE a = 1 AND b = 'x' AND ctid = (SELECT min(ctid) FROM dup WHERE a = 1)`,
		// bulk: values, and keys moved to keys free before the statement
		`UPDATE acc SET bal = bal * 2, at = at + interval '1 day 3 hours', f = f * 1.1 WHERE id > 10`,
		`UPDATE acc SET id = id + 100000 WHERE id % 7 = 0`,
		// two keys swapped within a transaction, then changed again
		`BEGIN`,
		`UPDATE acc SET id = -id WHERE id IN (3, 4)`,
		`UPDATE acc SET id = 7 - (-id) WHERE id IN (-3, -4)`, // 3 -> 4, 4 -> 3: swapped in one statement of the transaction
		`UPDATE acc SET owner = owner || '!' WHERE id IN (3, 4)`,
		`DELETE FROM acc WHERE id = 5`,
		`INSERT INTO acc VALUES (5, 'five again', NULL, NULL, 'NaN')`,
		`UPDATE acc SET f = '-0' WHERE id = 5`,
		`COMMIT`,
		// one MERGE deletes key 6 and inserts it again, updates 8, inserts 9999
		`MERGE INTO acc USING (VALUES (6, 6), (-1, 6), (8, 0), (-2, 9999)) AS s(id, newid) ON acc.id = s.id
			WHEN MATCHED AND s.id = 6 THEN DELETE
			WHEN MATCHED THEN UPDATE SET owner = 'merged'
			WHEN NOT MATCHED THEN INSERT VALUES (s.newid, 'merge-new', 1, now(), 1)`,
		`INSERT INTO acc VALUES (9, 'x', 0, now(), 0), (123456, 'y', 0, now(), 0) ON CONFLICT (id) DO UPDATE SET owner = 'upserted'`,
		// keyless: duplicates updated and deleted together
		`UPDATE dup SET b = 'z' WHERE a IN (2, 3)`,
		`DELETE FROM dup WHERE a = 4`,
		`INSERT INTO dup SELECT a, b FROM dup WHERE a = 0`,
		// partitioned (row triggers): rows moving between partitions and keys
		`UPDATE ev SET day = day + 20, v = v || '+' WHERE id % 3 = 0 AND day < '2026-02-01'`,
		`UPDATE ev SET id = id + 1000 WHERE id % 5 = 0`,
		`DELETE FROM ev WHERE id % 11 = 0`,
		// numeric keys: no key changed; keys moved; keys equal but printed anew
		`UPDATE nk SET v = v || '+'`,
		`UPDATE nk SET k = k + 1000 WHERE k > 90`,
		`UPDATE nk SET k = round(k, 2) WHERE k < 4`,
		`TRUNCATE dup`,
		`INSERT INTO dup VALUES (1, 'after truncate'), (1, 'after truncate')`,
	} {
		if _, err := c.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	var bad int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM kwickmig.log WHERE tid = 1 AND op <> 'D' AND data[4] !~ '^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\+00$'
		AND data[4] IS NOT NULL`).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	if bad > 0 {
		t.Fatalf("%d logged timestamptz values not in ISO form in UTC: the session's settings leaked into the log", bad)
	}
	r := e.finalDelta(Options{BatchRows: 700})
	if r.Rows < 2000 {
		t.Fatalf("final delta applied %d rows, want thousands", r.Rows)
	}
	e.assertSame()
	// the next round after more of the same
	kmtest.Exec(t, e.SourceURL, `UPDATE acc SET id = id - 100000 WHERE id > 100000`, `UPDATE ev SET v = 'w' WHERE id < 50`)
	e.finalDelta(Options{})
	e.assertSame()
}

// TestStatementCaptureSearchPath: the statement trigger functions of
// tables whose text forms allow it have no SET clauses (the search_path is
// the writer's). A writer puts its own schema before pg_catalog, with
// operators and functions named like those the function uses that fail if
// they ever run, and a temporary table named text; its writes, in its own
// date, zone, float, bytea and interval styles and in the canonical ones,
// are logged exactly, nothing of its own runs, and its settings are its own
// again after each statement.
func TestStatementCaptureSearchPath(t *testing.T) {
	t.Parallel()
	app, pw := loginRole(t, "app")
	e := newEnv(t, `CREATE TABLE acct (id int PRIMARY KEY, v text, at timestamptz, d date, f float8, b bytea, i interval, tags text[])`,
		// partitioned: row triggers, unpinned the same way
		`CREATE TABLE pt (id int, day date, at timestamptz, PRIMARY KEY (id, day)) PARTITION BY RANGE (day)`,
		`CREATE TABLE pt_1 PARTITION OF pt FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')`)
	kmtest.Exec(t, e.SourceURL,
		`CREATE SCHEMA hack AUTHORIZATION `+app,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON acct, pt TO `+app,
		`INSERT INTO pt SELECT g, '2026-05-01', now() FROM generate_series(1, 30) g`,
		`INSERT INTO acct SELECT g, 'v' || g, '2026-03-01 12:00+01'::timestamptz + g * interval '1 minute', '2026-03-01'::date + g, g / 7.0, '\xdead', g * interval '90 minutes', '{a,b}' FROM generate_series(1, 50) g`)
	e.install(InstallOptions{StatementTriggers: true})
	for fn, want := range map[string]string{"capture_1": "jit=off", "capture_2": ""} {
		var config []string
		if err := e.src().QueryRow(testCtx(t), `SELECT coalesce(proconfig, '{}') FROM pg_proc WHERE proname = $1`, fn).Scan(&config); err != nil {
			t.Fatal(err)
		}
		if strings.Join(config, ",") != want {
			t.Fatalf("%s has SET clauses %v, want %q only (its types allow the unpinned function)", fn, config, want)
		}
	}
	e.bulkCopy(nil)
	ctx := testCtx(t)
	c := e.connect(pgutil.Source, asRole(t, e.SourceURL, app, pw))
	trap := `LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hijacked: the capture function ran the writer''s own code'; END $$`
	for _, s := range []string{
		`CREATE FUNCTION hack.teq(text, text) RETURNS boolean ` + trap,
		`CREATE FUNCTION hack.aeq(text[], text[]) RETURNS boolean ` + trap,
		`CREATE FUNCTION hack.beq(bigint, integer) RETURNS boolean ` + trap,
		`CREATE FUNCTION hack.starts_with(text, text) RETURNS boolean ` + trap,
		`CREATE OPERATOR hack.= (FUNCTION = hack.teq, LEFTARG = text, RIGHTARG = text)`,
		`CREATE OPERATOR hack.= (FUNCTION = hack.aeq, LEFTARG = text[], RIGHTARG = text[])`,
		`CREATE OPERATOR hack.= (FUNCTION = hack.beq, LEFTARG = bigint, RIGHTARG = integer)`,
		`CREATE OPERATOR hack.> (FUNCTION = hack.beq, LEFTARG = bigint, RIGHTARG = integer)`,
		`CREATE TEMP TABLE text (x int)`,
		// the function runs as the capture role: let it see the schema
		`GRANT USAGE ON SCHEMA hack TO PUBLIC`,
		`SET search_path = hack, pg_catalog, pg_temp`,
	} {
		if _, err := c.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	writes := []string{
		`UPDATE public.acct SET v = 'one' WHERE id OPERATOR(pg_catalog.=) 1`,
		`UPDATE public.acct SET id = id OPERATOR(pg_catalog.+) 100 WHERE id OPERATOR(pg_catalog.=) 2`,
		`UPDATE public.acct SET f = f OPERATOR(pg_catalog.*) 3, at = at OPERATOR(pg_catalog.+) '1 day'::pg_catalog.interval WHERE id OPERATOR(pg_catalog.<) 20`,
		`UPDATE public.acct SET id = id OPERATOR(pg_catalog.+) 1000 WHERE id OPERATOR(pg_catalog.>) 40`,
		`INSERT INTO public.acct VALUES (7000, 'new', now(), current_date, 1e-300, '\x00ff', '-1 year 2 months 3 days 04:05:06.7', '{x}')`,
		`DELETE FROM public.acct WHERE id OPERATOR(pg_catalog.<) 5`,
		`UPDATE public.pt SET at = at OPERATOR(pg_catalog.+) '1 hour'::pg_catalog.interval WHERE id OPERATOR(pg_catalog.<) 10`,
		`UPDATE public.pt SET id = id OPERATOR(pg_catalog.+) 100 WHERE id OPERATOR(pg_catalog.=) 10`,
		`DELETE FROM public.pt WHERE id OPERATOR(pg_catalog.=) 11`,
		`INSERT INTO public.pt VALUES (7000, '2026-06-01', now())`,
	}
	for _, settings := range [][]string{
		{`SET timezone = 'Asia/Kathmandu'`, `SET datestyle = 'German, DMY'`, `SET extra_float_digits = 0`, `SET bytea_output = 'escape'`, `SET intervalstyle = 'iso_8601'`},
		{`SET timezone = 'UTC'`, `SET datestyle = 'ISO, MDY'`, `SET extra_float_digits = 3`, `SET bytea_output = 'hex'`, `SET intervalstyle = 'postgres'`},
	} {
		for _, s := range settings {
			if _, err := c.Exec(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		want := map[string]string{}
		for _, g := range []string{"TimeZone", "DateStyle", "extra_float_digits", "bytea_output", "IntervalStyle"} {
			var v string
			if err := c.QueryRow(ctx, `SELECT pg_catalog.current_setting($1)`, g).Scan(&v); err != nil {
				t.Fatal(err)
			}
			want[g] = v
		}
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range writes {
			if _, err := tx.Exec(ctx, s); err != nil {
				t.Fatalf("%s (%s): %v", s, settings[0], err)
			}
			for g, v := range want {
				var now string
				if err := tx.QueryRow(ctx, `SELECT pg_catalog.current_setting($1)`, g).Scan(&now); err != nil {
					t.Fatal(err)
				}
				if now != v {
					t.Fatalf("after %s the writer's %s is %q, was %q", s, g, now, v)
				}
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		e.finalDelta(Options{})
		e.assertSame()
		// back to the original keys for the next round of the same writes
		kmtest.Exec(t, e.SourceURL, `DELETE FROM acct WHERE id >= 100`, `DELETE FROM pt WHERE id >= 100`,
			`INSERT INTO pt SELECT g, '2026-05-01', now() FROM generate_series(1, 30) g ON CONFLICT DO NOTHING`,
			`INSERT INTO acct SELECT g, 'v' || g, now(), current_date, g, NULL, NULL, NULL FROM generate_series(1, 50) g ON CONFLICT DO NOTHING`)
	}
	var bad int64
	if err := e.src().QueryRow(ctx, `SELECT count(*) FROM kwickmig.log WHERE op <> 'D' AND (
		tid = 1 AND (data[3] !~ '\+00$' OR data[4] !~ '^\d{4}-' OR data[6] !~ '^\\x') OR tid = 2 AND (data[2] !~ '^\d{4}-' OR data[3] !~ '\+00$'))`).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Fatalf("%d log rows not in the canonical text forms", bad)
	}
}

// TestRowTriggersDefault: install without StatementTriggers captures a plain
// table by row triggers (recorded for capture add), and multi-row
// statements with key changes arrive exactly.
func TestRowTriggersDefault(t *testing.T) {
	t.Parallel()
	e := newEnv(t, `CREATE TABLE r (id int PRIMARY KEY, v text)`)
	kmtest.Exec(t, e.SourceURL, `INSERT INTO r SELECT g, 'v' FROM generate_series(1, 500) g`)
	e.install(InstallOptions{})
	var names []string
	var by string
	if err := e.src().QueryRow(testCtx(t), `SELECT array_agg(tgname::text ORDER BY tgname), (SELECT value FROM kwickmig.meta WHERE key = 'capture_by')
		FROM pg_trigger WHERE tgrelid = 'r'::regclass AND NOT tgisinternal`).Scan(&names, &by); err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != "kwickmig_capture,kwickmig_capture_truncate" || by != "row" {
		t.Fatalf("triggers %v, capture_by %q; want the row triggers, recorded as row", names, by)
	}
	e.bulkCopy(nil)
	kmtest.Exec(t, e.SourceURL, `UPDATE r SET v = v || '+'`, `UPDATE r SET id = id + 1000 WHERE id % 4 = 0`, `DELETE FROM r WHERE id < 20`)
	e.finalDelta(Options{})
	e.assertSame()
}

// TestStatementCaptureDrift: a table captured by statement that joins an
// inheritance tree (its statement triggers would log a child's rows as its
// own), or whose statement triggers are dropped or no longer ALWAYS, is
// refused by final-delta before anything is applied.
func TestStatementCaptureDrift(t *testing.T) {
	t.Parallel()
	cases := []struct{ ddl, want string }{
		{`CREATE TABLE s1_kid () INHERITS (s1)`, "public.s1 (joined an inheritance tree"},
		{`DROP TRIGGER kwickmig_capture_delete ON s2`, "public.s2 (capture trigger disabled"},
		{`ALTER TABLE s3 ENABLE TRIGGER kwickmig_capture_insert`, "public.s3 (capture trigger disabled"},
	}
	var ddl []string
	for i := range cases {
		ddl = append(ddl, fmt.Sprintf(`CREATE TABLE s%d (id int PRIMARY KEY, v text)`, i+1))
	}
	ddl = append(ddl, `CREATE TABLE s4 (id int PRIMARY KEY)`) // unchanged
	e := newEnv(t, ddl...)
	e.install(InstallOptions{StatementTriggers: true})
	e.bulkCopy(nil)
	for i, tc := range cases {
		kmtest.Exec(t, e.SourceURL, fmt.Sprintf(`INSERT INTO s%d VALUES (1, 'x')`, i+1), tc.ddl)
	}
	_, err := FinalDelta(testCtx(t), e.src(), e.tgt(), Options{})
	if !errors.Is(err, ErrSchemaChanged) {
		t.Fatalf("err=%v, want ErrSchemaChanged", err)
	}
	for _, tc := range cases {
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("after %s: error %q does not say %q", tc.ddl, err, tc.want)
		}
	}
	if strings.Contains(err.Error(), "s4") {
		t.Errorf("error names the unchanged table s4: %v", err)
	}
}
