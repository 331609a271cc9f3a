package pgdelta

import (
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
		`CREATE TABLE dup (a int, b text)`, // no key: full-row matching
		`CREATE TABLE ev (id int NOT NULL, day date NOT NULL, v text, PRIMARY KEY (id, day)) PARTITION BY RANGE (day)`,
		`CREATE TABLE ev_1 PARTITION OF ev FOR VALUES FROM ('2026-01-01') TO ('2026-02-01')`,
		`CREATE TABLE ev_2 PARTITION OF ev FOR VALUES FROM ('2026-02-01') TO ('2026-03-01')`)
	kmtest.Exec(t, e.SourceURL,
		`INSERT INTO acc SELECT g, 'o' || g, g * 1.5, '2026-01-01 10:00+02'::timestamptz + g * interval '1 hour', g / 3.0 FROM generate_series(1, 2000) g`,
		`INSERT INTO dup SELECT g % 5, 'x' FROM generate_series(1, 50) g`,
		`INSERT INTO ev SELECT g, '2026-01-01'::date + (g % 50), 'v' || g FROM generate_series(1, 300) g`)
	e.install(InstallOptions{AllowNoKey: true})
	var stmtTables, rowTables string
	if err := e.src().QueryRow(testCtx(t), `SELECT
			string_agg(DISTINCT tgrelid::regclass::text, ',') FILTER (WHERE tgname = 'kwickmig_capture_update'),
			string_agg(DISTINCT tgrelid::regclass::text, ',') FILTER (WHERE tgname = 'kwickmig_capture')
		FROM pg_trigger WHERE tgname LIKE 'kwickmig%' AND NOT tgisinternal AND tgparentid = 0`).Scan(&stmtTables, &rowTables); err != nil {
		t.Fatal(err)
	}
	if stmtTables != "acc,dup" || rowTables != "ev" {
		t.Fatalf("captured by statement: %q, by row: %q; want acc,dup and ev", stmtTables, rowTables)
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
