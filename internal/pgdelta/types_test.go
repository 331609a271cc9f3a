package pgdelta

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/kmtest"
)

const hostileDDL = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy ''quoted''');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE SCHEMA "Sales Dept";
CREATE TABLE "Sales Dept"."Order Lines" (
	"weird""name" text NOT NULL,
	"Line No" int NOT NULL,
	"select" text,
	"MixedCase" numeric,
	PRIMARY KEY ("weird""name", "Line No"));
CREATE TABLE "user" (
	"from" int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	n numeric, f8 float8, f4 float4, ts timestamptz, iv interval, j jsonb, js json,
	ia int[], ta text[], fa float8[], b bytea, u uuid, m mood, d posint, t text,
	dt date, tm time, bo boolean, ma int[][],
	twice numeric GENERATED ALWAYS AS (n * 2) STORED);
CREATE TABLE parent (id int PRIMARY KEY, name text);
CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent (id) ON UPDATE CASCADE ON DELETE CASCADE, v text);
CREATE TABLE ukey (code text NOT NULL UNIQUE, v int);`

const typedRows = `INSERT INTO "user" (n, f8, f4, ts, iv, j, js, ia, ta, fa, b, u, m, d, t, dt, tm, bo, ma) VALUES
	(12345678901234567890.123456789000, 'NaN', 'Infinity', '2024-02-29 23:59:59.999999+05:30', '1 mon -2 days 03:04:05.678901',
	 '{"a": [1, 2.50, null], "b": "x\ny", "c": {"NaN": "NaN"}}', '{"b": 1,  "a":2}', '{1,NULL,3}', '{"a b","c\"d",NULL,"e,f","NULL"}', '{NaN,-Infinity,1.5e300,-0.1}',
	 '\x00ff5c27', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'happy ''quoted''', 7, E'tab\there\nnewline \\ backslash ünïcödé 😀 ''q''',
	 '2000-02-29', '24:00:00', true, '{{1,2},{3,4}}'),
	('NaN', '-Infinity', 'NaN', 'infinity', '-178000000 years', 'null', '[]', '{}', '{}', '{}', '\x', NULL, 'sad', 1, '',
	 '-infinity', '00:00:00.000001', false, NULL),
	(-0.000000000000000000001, 1.0000000000000002, 3.4028235e38, '1970-01-01 00:00:00+00', '0', '"string"', '"s"', NULL, NULL, NULL,
	 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	(1e-30, '-0', 1.17549435e-38, NULL, '1 year 2 mons 3 days 04:05:06', '{"k": 1e+30}', NULL, '[2:3]={-2147483648,0}', '{""}', '{Infinity,-0}',
	 NULL, NULL, 'ok', 2147483647, NULL, NULL, NULL, NULL, NULL)`

// TestHostileIdentifiersAndTypes: quoted names everywhere and every common
// type round-trip exactly through capture and apply.
func TestHostileIdentifiersAndTypes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hostileDDL)
	kmtest.Exec(t, e.SourceURL, `INSERT INTO "Sales Dept"."Order Lines" VALUES ('a"b', 1, 'x', 1.50)`, typedRows)
	res := e.install(InstallOptions{})
	if len(res.Tables) != 5 {
		t.Fatalf("captured %v, want 5 tables", res.Tables)
	}
	e.bulkCopy(nil)
	kmtest.Exec(t, e.SourceURL,
		typedRows,
		`INSERT INTO "Sales Dept"."Order Lines" VALUES ('it''s', 2, 'select', 'NaN'), (E'back\\slash', 3, NULL, -0.0)`,
		`UPDATE "Sales Dept"."Order Lines" SET "MixedCase" = 'Infinity' WHERE "Line No" = 1`,
		`UPDATE "Sales Dept"."Order Lines" SET "Line No" = 10 WHERE "weird""name" = 'a"b'`,
		`UPDATE "user" SET t = t || ' more', f8 = 'Infinity' WHERE "from" = 1`,
		`DELETE FROM "user" WHERE "from" = 2`,
		`INSERT INTO "user" (n, f8) OVERRIDING SYSTEM VALUE VALUES (1, 2)`,
		`INSERT INTO ukey VALUES ('k1', 1), ('k2', 2)`,
		`UPDATE ukey SET code = 'k3' WHERE code = 'k1'`)
	e.finalDelta(Options{})
	e.assertSame()
	// the identity sequence followed
	if got, want := e.count(e.TargetURL, `SELECT nextval(pg_get_serial_sequence('"user"', 'from'))`), e.count(e.SourceURL, `SELECT nextval(pg_get_serial_sequence('"user"', 'from'))`); got != want {
		t.Fatalf("identity sequence next %d, want %d", got, want)
	}
}

// TestKeyChangesDeletesTruncate: PK-changing updates (including chains and
// swaps), delete then re-insert of one key, TRUNCATE of tables linked by a
// foreign key, children arriving before parents.
func TestKeyChangesDeletesTruncate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hostileDDL)
	kmtest.Exec(t, e.SourceURL,
		`INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 20) g`,
		`INSERT INTO child SELECT g, g, 'c' || g FROM generate_series(1, 20) g`)
	e.install(InstallOptions{})
	e.bulkCopy(nil)
	kmtest.Exec(t, e.SourceURL,
		// a key moved twice in one round, and a swap through a free key
		`UPDATE parent SET id = 100 WHERE id = 1`,
		`UPDATE parent SET id = 101 WHERE id = 100`,
		`UPDATE child SET parent_id = 101 WHERE parent_id = 1`,
		`UPDATE parent SET id = 999 WHERE id = 2`, `UPDATE parent SET id = 2 WHERE id = 3`, `UPDATE parent SET id = 3 WHERE id = 999`,
		// delete and re-insert the same key, twice
		`DELETE FROM child WHERE id = 5`, `INSERT INTO child VALUES (5, 6, 'again')`,
		`DELETE FROM child WHERE id = 5`, `INSERT INTO child VALUES (5, 7, 'again and again')`,
		// key moves onto a just-deleted key
		`DELETE FROM child WHERE id = 8`, `UPDATE child SET id = 8 WHERE id = 9`,
		`UPDATE child SET v = 'last' WHERE id = 8`)
	e.finalDelta(Options{BatchRows: 3})
	e.assertSame()
	kmtest.Exec(t, e.SourceURL,
		`TRUNCATE child, parent`,
		`INSERT INTO parent VALUES (1, 'fresh')`,
		`INSERT INTO child VALUES (1, 1, 'fresh child')`,
		`DELETE FROM child WHERE id = 1`, `INSERT INTO child VALUES (1, 1, 'fresher')`)
	// and in another round, truncate with a re-insert inside one transaction
	e.finalDelta(Options{BatchRows: 2})
	e.assertSame()
	kmtest.Exec(t, e.SourceURL, `BEGIN; INSERT INTO parent VALUES (2, 'x'); TRUNCATE parent CASCADE; INSERT INTO parent VALUES (3, 'y'); COMMIT`)
	e.finalDelta(Options{})
	e.assertSame()
}

func TestInstallRefusesTablesWithoutKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, simpleDDL, `CREATE TABLE audit (at timestamptz, what text)`,
		`CREATE TABLE "Odd Log" (n int UNIQUE)`, // unique but nullable: no usable key
		`CREATE TABLE partial (n int NOT NULL)`, `CREATE UNIQUE INDEX ON partial (n) WHERE n > 0`)
	_, err := Install(testCtx(t), e.src(), InstallOptions{})
	if !errors.Is(err, ErrNoKey) {
		t.Fatalf("err=%v, want ErrNoKey", err)
	}
	for _, name := range []string{"public.audit", `public."Odd Log"`, "public.partial"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
	if strings.Contains(err.Error(), "items") {
		t.Errorf("error %q names a table that has a key", err)
	}
	if ok, _ := CaptureInstalled(testCtx(t), e.src()); ok {
		t.Fatal("capture installed despite the refusal")
	}
	// excluded, they no longer block the install
	res := e.install(InstallOptions{Exclude: []string{"audit", `public.Odd Log`, "partial"}})
	if len(res.Tables) != 1 || len(res.Excluded) != 3 {
		t.Fatalf("install = %+v, want 1 table, 3 excluded", res)
	}
}

// TestSchemaChangeRefused: every kind of source schema change since install
// is refused before anything moves, all of them named in one error.
func TestSchemaChangeRefused(t *testing.T) {
	t.Parallel()
	cases := []struct{ ddl, want string }{
		{`ALTER TABLE t1 ADD COLUMN extra int`, "public.t1 (columns changed)"},
		{`ALTER TABLE t2 ALTER COLUMN qty TYPE bigint`, "public.t2 (columns changed)"},
		{`ALTER TABLE t3 RENAME TO things`, "public.t3 (renamed to public.things)"},
		{`CREATE TABLE later (id int PRIMARY KEY)`, "public.later (created after capture install"},
		{`DROP TABLE t5`, "public.t5 (dropped)"},
		{`ALTER TABLE t6 DISABLE TRIGGER kwickmig_capture`, "public.t6 (capture trigger disabled"},
		{`ALTER TABLE t7 ENABLE TRIGGER kwickmig_capture`, "public.t7 (capture trigger disabled"}, // no longer ALWAYS
		{`ALTER TABLE t8 DROP CONSTRAINT t8_pkey, ADD PRIMARY KEY (id, name)`, "public.t8 (key changed)"},
	}
	var ddl []string
	for i := range cases {
		ddl = append(ddl, fmt.Sprintf(`CREATE TABLE t%d (id int PRIMARY KEY, name text NOT NULL, qty int)`, i+1))
	}
	e := newEnv(t, ddl...)
	e.install(InstallOptions{})
	e.bulkCopy(nil)
	for i, tc := range cases {
		kmtest.Exec(t, e.SourceURL, fmt.Sprintf(`INSERT INTO t%d VALUES (1, 'x', 1)`, i+1), tc.ddl)
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
	if strings.Contains(err.Error(), "t4") {
		t.Errorf("error names the unchanged table t4: %v", err)
	}
	if n := e.count(e.TargetURL, `SELECT count(*) FROM kwickmig.rounds WHERE round > 0`); n != 0 {
		t.Fatalf("%d rounds recorded despite the refusal", n)
	}
}

func TestTargetMismatchRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, simpleDDL)
	e.install(InstallOptions{})
	e.bulkCopy(nil)
	kmtest.Exec(t, e.TargetURL, `ALTER TABLE items DROP COLUMN note`)
	_, err := FinalDelta(testCtx(t), e.src(), e.tgt(), Options{})
	if !errors.Is(err, ErrSchemaChanged) || !strings.Contains(err.Error(), "public.items (source columns") {
		t.Fatalf("err=%v, want a target column mismatch naming public.items", err)
	}
	kmtest.Exec(t, e.TargetURL, `ALTER TABLE items ADD COLUMN note text`, `ALTER TABLE items DROP CONSTRAINT items_pkey`)
	_, err = FinalDelta(testCtx(t), e.src(), e.tgt(), Options{})
	if !errors.Is(err, ErrSchemaChanged) || !strings.Contains(err.Error(), "public.items (no unique index on (id)") {
		t.Fatalf("err=%v, want a missing-index error naming public.items", err)
	}
}

func TestBaselineBeforeInstallRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, simpleDDL)
	ctx := testCtx(t)
	var snap string
	if err := e.src().QueryRow(ctx, `SELECT pg_current_snapshot()::text`).Scan(&snap); err != nil {
		t.Fatal(err)
	}
	e.install(InstallOptions{})
	if err := RecordBaseline(ctx, e.tgt(), snap); err != nil {
		t.Fatal(err)
	}
	_, err := FinalDelta(ctx, e.src(), e.tgt(), Options{})
	if err == nil || !strings.Contains(err.Error(), "before capture install") {
		t.Fatalf("err=%v, want a refusal of the early snapshot", err)
	}
}

// TestAllowNoKey: a table without a key, with duplicate rows and awkward
// types, is captured with AllowNoKey and kept identical by full-row matching.
func TestAllowNoKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, `CREATE TABLE audit (at timestamptz, what text, amount float8, tags text[], doc json, g int GENERATED ALWAYS AS (length(what)) STORED,
		flag boolean DEFAULT true, ip inet DEFAULT '10.1.2.3', code char(6) DEFAULT 'ab')`)
	kmtest.Exec(t, e.SourceURL, `INSERT INTO audit (at, what, amount, tags, doc) VALUES
		('2024-01-01 10:00+01', 'dup', 'NaN', '{a,NULL}', '{"x":  1}'), ('2024-01-01 10:00+01', 'dup', 'NaN', '{a,NULL}', '{"x":  1}'),
		(NULL, NULL, NULL, NULL, NULL), (NULL, NULL, NULL, NULL, NULL), ('infinity', E'tab\t', -0, '{}', 'null')`)
	if _, err := Install(testCtx(t), e.src(), InstallOptions{}); !errors.Is(err, ErrNoKey) {
		t.Fatalf("install without AllowNoKey: err=%v, want ErrNoKey", err)
	}
	res := e.install(InstallOptions{AllowNoKey: true})
	if len(res.NoKey) != 1 {
		t.Fatalf("install = %+v, want audit captured without a key", res)
	}
	e.bulkCopy(nil)
	kmtest.Exec(t, e.SourceURL,
		`INSERT INTO audit (at, what) SELECT now(), 'bulk ' || g FROM generate_series(1, 50) g`,
		`INSERT INTO audit (what) VALUES ('dup'), ('dup')`,
		`UPDATE audit SET what = 'one of the dups' WHERE ctid = (SELECT min(ctid) FROM audit WHERE what = 'dup' AND at IS NOT NULL)`,
		`DELETE FROM audit WHERE ctid = (SELECT min(ctid) FROM audit WHERE what IS NULL)`,
		`UPDATE audit SET amount = 1.5 WHERE what LIKE 'bulk 1%'`,
		`DELETE FROM audit WHERE what LIKE 'bulk 2%'`,
		`UPDATE audit SET doc = '{"x":  2}' WHERE amount = 0`)
	e.finalDelta(Options{BatchRows: 7})
	e.assertSame()
	// a target that drifted is reported, not silently skipped
	kmtest.Exec(t, e.TargetURL, `DELETE FROM audit WHERE what = 'one of the dups'`)
	kmtest.Exec(t, e.SourceURL, `DELETE FROM audit WHERE what = 'one of the dups'`)
	_, err := FinalDelta(testCtx(t), e.src(), e.tgt(), Options{})
	if err == nil || !strings.Contains(err.Error(), "the target differs from the source") {
		t.Fatalf("err=%v, want a drift error", err)
	}
}

func TestInstallLockTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, simpleDDL)
	ctx := testCtx(t)
	writer := e.src()
	tx, err := writer.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO items (name) VALUES ('busy')`); err != nil {
		t.Fatal(err)
	}
	_, err = Install(ctx, e.src(), InstallOptions{LockTimeout: 200 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "could not lock public.items within 200ms") {
		t.Fatalf("err=%v, want a lock timeout naming public.items", err)
	}
	if ok, _ := CaptureInstalled(ctx, e.src()); ok {
		t.Fatal("capture half installed after a lock timeout")
	}
}
