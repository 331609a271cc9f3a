package main

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/verify"
)

// manifestSchema has what verify db treats differently: a bigserial key,
// a composite key with spaces in its names, a text key with hostile
// values, a table without a key, a partitioned table (its leaves are
// verified), and a materialized view.
var manifestSchema = []string{
	`CREATE TABLE orders (id bigserial PRIMARY KEY, note text, amount numeric(12,2), at timestamptz, data jsonb)`,
	`INSERT INTO orders (note, amount, at, data) SELECT 'note ' || g, g * 1.25,
		timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute', jsonb_build_object('g', g)
		FROM generate_series(1, 1200) g`,
	`CREATE TABLE "Order Lines" ("order id" bigint, line int, "Qty" int, txt text, PRIMARY KEY ("order id", line))`,
	`INSERT INTO "Order Lines" SELECT g / 3, g % 3, g, CASE WHEN g % 5 = 0 THEN NULL ELSE 'l' || g END FROM generate_series(1, 900) g`,
	`CREATE TABLE "we""ird keys" (k text PRIMARY KEY, v int)`,
	`INSERT INTO "we""ird keys" VALUES ('a,b', 1), ('x=y', 2), ('it''s', 3), (E'back\\slash', 4), (E'new\nline', 5),
		('"quoted"', 6), ('ünïcødé ☕', 7), (' lead space', 8), ('{brace}', 9), ('', 10)`,
	`INSERT INTO "we""ird keys" SELECT 'k' || g, g FROM generate_series(11, 300) g`,
	`CREATE TABLE audit (what text, at date)`,
	`INSERT INTO audit SELECT 'event ' || (g % 50), date '2026-01-01' + g % 10 FROM generate_series(1, 300) g`,
	`CREATE TABLE events (id int, at date, v text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)`,
	`CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')`,
	`CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')`,
	`INSERT INTO events SELECT g, date '2025-07-01' + g % 365, 'v' || g FROM generate_series(1, 600) g`,
	`CREATE MATERIALIZED VIEW order_days AS SELECT at::date AS day, count(*) AS n FROM orders GROUP BY 1`,
	`CREATE MATERIALIZED VIEW not_yet AS SELECT 1 AS x WITH NO DATA`,
	`CREATE SCHEMA "Sales Data"`,
	`CREATE TABLE "Sales Data"."empty, keyed" (id int PRIMARY KEY)`,
	`CREATE TABLE "Sales Data".empty_keyless (x text)`,
}

// runManifestCLI runs verify db with args and reads its --report.
func runManifestCLI(t *testing.T, args ...string) (int, map[string]any, string, string) {
	t.Helper()
	rep := filepath.Join(t.TempDir(), "report.json")
	code, out, errOut := runCLI(t, context.Background(), append(append([]string{"verify", "db"}, args...), "--report", rep)...)
	var env map[string]any
	if data, err := os.ReadFile(rep); err == nil {
		if err := json.Unmarshal(data, &env); err != nil {
			t.Fatalf("report: %v", err)
		}
	}
	return code, env, out, errOut
}

// compareResult is the result section of a verify db --report.
func compareResult(t *testing.T, env map[string]any) verify.DBResult {
	t.Helper()
	data, _ := json.Marshal(env)
	var r verify.DBResult
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("result: %v", err)
	}
	return r
}

// rowsNamed lists every differing row as "kind table: key".
func rowsNamed(r verify.DBResult) []string {
	var out []string
	for _, t := range r.Tables {
		for _, d := range t.Rows {
			out = append(out, d.Kind+" "+t.Table+": "+d.Key)
		}
	}
	slices.Sort(out)
	return out
}

func reportVerdict(t *testing.T, cp string) (bool, []string) {
	t.Helper()
	code, out, errOut := runCLI(t, context.Background(), "report", "--checkpoint", cp, "--json", "--offline")
	if code != 0 {
		t.Fatalf("report: %d %s %s", code, out, errOut)
	}
	var r struct {
		Go      bool     `json:"go"`
		Reasons []string `json:"no_go_reasons"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("report json: %v\n%s", err, out)
	}
	return r.Go, r.Reasons
}

func TestVerifyDBManifest(t *testing.T) {
	pg := kmtest.PG(t)
	s3e := kmtest.S3(t)
	kmtest.Exec(t, pg.SourceURL, manifestSchema...)
	ctx := context.Background()
	cp := filepath.Join(t.TempDir(), "db.db")
	if code, out, errs := runCLI(t, ctx, "db", "copy", "--source", pg.SourceURL, "--target", pg.TargetURL, "--checkpoint", cp); code != 0 {
		t.Fatalf("db copy: %d\n%s\n%s", code, out, errs)
	}

	// The manifest, written from the source (writes have stopped), to a
	// directory and to a bucket.
	dir := filepath.Join(t.TempDir(), "manifest")
	s3url := "s3://" + s3e.Bucket + "/verify/receipts"
	s3flags := []string{"--endpoint-url", s3e.Endpoint}
	s3e.SetAWSEnv(t)
	for _, out := range []string{dir, s3url} {
		code, env, stdout, stderr := runManifestCLI(t, append([]string{"--source", pg.SourceURL, "--out", out,
			"--segment-rows", "100", "--checkpoint", cp}, s3flags...)...)
		res := env
		if code != 0 || res["mode"] != verify.ModeManifestWrite || res["tables_written"] != float64(9) || res["rows_source"] != float64(1200+900+300+300+600+1) {
			t.Fatalf("write %s: code %d result %v\n%s\n%s", out, code, res, stdout, stderr)
		}
	}
	dirOrders := filepath.Join(t.TempDir(), "orders")
	if code, _, out, errOut := runManifestCLI(t, "--source", pg.SourceURL, "--out", dirOrders, "--table", "orders", "--checkpoint", ""); code != 0 {
		t.Fatalf("write --table orders: %d\n%s\n%s", code, out, errOut)
	}
	// Files hold every key: 0600 in 0700 directories.
	if err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, _ := d.Info()
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700 | fs.ModeDir
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// A second write to the same place is refused: one manifest per location.
	if code, _, _, stderr := runManifestCLI(t, "--source", pg.SourceURL, "--out", dir, "--checkpoint", ""); code != 1 ||
		!strings.Contains(stderr, "already holds a verify manifest") {
		t.Fatalf("rewrite: code %d %s", code, stderr)
	}
	// Each half takes only its own database.
	for _, args := range [][]string{
		{"--source", pg.SourceURL, "--target", pg.TargetURL, "--out", dir},
		{"--source", pg.SourceURL, "--target", pg.TargetURL, "--in", dir},
		{"--target", pg.TargetURL, "--in", dir, "--out", dir},
		{"--target", pg.TargetURL, "--in", dir, "--table", "orders"},
	} {
		if code, _, _, stderr := runManifestCLI(t, append(args, "--checkpoint", "")...); code != 1 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Fatalf("%q: code %d %s", args, code, stderr)
		}
	}
	// A manifest write is no verification.
	if goNow, reasons := reportVerdict(t, cp); goNow || !strings.Contains(strings.Join(reasons, "\n"), "verify db has not run") {
		t.Fatalf("after the manifest write: go %v, reasons %q", goNow, reasons)
	}

	// From here on, nothing knows the source: no --source, no
	// $KWICKMIG_SOURCE_URL (a compare that reached for it would fail: the
	// source database is dropped before the compares of the damaged target).
	t.Setenv("KWICKMIG_SOURCE_URL", "")
	os.Unsetenv("KWICKMIG_SOURCE_URL")
	compare := func(in string, extra ...string) (int, verify.DBResult, map[string]any, string, string) {
		t.Helper()
		code, env, out, errOut := runManifestCLI(t, append([]string{"--target", pg.TargetURL, "--in", in, "--checkpoint", cp}, extra...)...)
		return code, compareResult(t, env), env, out, errOut
	}
	for _, in := range []string{dir, s3url} {
		code, res, env, out, errOut := compare(in, s3flags...)
		man, _ := env["manifest"].(map[string]any)
		if code != 0 || env["mode"] != verify.ModeManifestCompare || res.TablesChecked != 9 || res.TablesDiffer != 0 || res.RowsTarget != 1200+900+300+300+600+1 ||
			len(res.Sequences) != 1 || man["mode"] != verify.ModeManifestCompare || man["schema_fingerprint"] != man["target_schema_fingerprint"] {
			t.Fatalf("clean compare %s: code %d tables %d differ %d rows %d sequences %d manifest %v\n%s\n%s",
				in, code, res.TablesChecked, res.TablesDiffer, res.RowsTarget, len(res.Sequences), man, out, errOut)
		}
		mustContain(t, out, "OK: every table, row and sequence matches")
	}
	if goNow, reasons := reportVerdict(t, cp); !goNow {
		t.Fatalf("after a clean compare: NO-GO %q", reasons)
	}
	// A manifest of some tables compares those tables (and their sequences).
	if code, res, _, out, errOut := compare(dirOrders); code != 0 || res.TablesChecked != 1 || len(res.Sequences) != 1 || res.RowsTarget != 1200 {
		t.Fatalf("--table orders: code %d tables %d sequences %d rows %d\n%s\n%s", code, res.TablesChecked, len(res.Sequences), res.RowsTarget, out, errOut)
	}

	// One changed, one missing, one extra row (and one more of each kind
	// in the tables with hostile keys) on the target.
	kmtest.Exec(t, pg.TargetURL,
		`UPDATE orders SET amount = amount + 0.01 WHERE id = 777`,
		`DELETE FROM "Order Lines" WHERE "order id" = 150 AND line = 2`,
		`INSERT INTO events VALUES (9999, '2026-03-01', 'extra')`,
		`UPDATE "we""ird keys" SET v = 0 WHERE k = E'new\nline'`,
		`DELETE FROM "we""ird keys" WHERE k = 'a,b'`,
		`INSERT INTO "we""ird keys" VALUES ('it''s=extra, "x"', 1)`,
		`DELETE FROM audit WHERE ctid = (SELECT min(ctid) FROM audit WHERE what = 'event 7')`,
	)
	want := []string{
		"changed public.orders: id=777",
		"changed public.we\"ird keys: k=new\nline",
		"extra public.events_2026: id=9999, at=2026-03-01",
		"extra public.we\"ird keys: k=it's=extra, \"x\"",
		"missing public.Order Lines: order id=150, line=2",
		"missing public.we\"ird keys: k=a,b",
	}
	// The source itself is no target for its own manifest.
	if code, _, _, _, errOut := compare(dir, "--target", pg.SourceURL); code != 1 || !strings.Contains(errOut, "the target is the database the manifest was written from") {
		t.Fatalf("source as target: code %d %s", code, errOut)
	}
	// The direct verify, for the same answer.
	code, direct, out := runVerifyDBCLI(t, pg, "--segment-rows", "100")
	if code != 2 || !slices.Equal(rowsNamed(direct), want) {
		t.Fatalf("direct: code %d rows %q\n%s", code, rowsNamed(direct), out)
	}
	src := os.Getenv("KWICKMIG_TEST_PG_SOURCE")
	kmtest.Exec(t, src, "DROP DATABASE "+pg.DBName+" WITH (FORCE)")

	for _, in := range []string{dir, s3url} {
		code, res, _, out, errOut := compare(in, s3flags...)
		audit := tableResult(res, "public.audit")
		if code != 2 || !slices.Equal(rowsNamed(res), want) || res.TablesDiffer != direct.TablesDiffer || len(res.Schema) != 0 ||
			audit == nil || !audit.ChecksumDiffer || audit.Missing != 1 || audit.Extra != 0 {
			t.Fatalf("compare %s: code %d rows %q differ %d schema %v audit %+v\n%s\n%s", in, code, rowsNamed(res), res.TablesDiffer, res.Schema, audit, out, errOut)
		}
		// Each is named by key on the output too, as the direct verify prints it.
		for _, line := range []string{`CHANGED public.orders: id=777`, `MISSING public.Order Lines: order id=150, line=2`,
			`EXTRA public.events_2026: id=9999, at=2026-03-01`, `CHANGED public.we"ird keys: "k=new\nline"`, `CHECKSUM public.audit: contents differ`} {
			mustContain(t, out, line)
		}
		mustContain(t, errOut, "verify db: 5 tables differ")
	}
	if goNow, _ := reportVerdict(t, cp); goNow {
		t.Fatal("GO after a compare that found differences")
	}

	// Schema, privileges and sequences come from the manifest too.
	kmtest.Exec(t, pg.TargetURL, `ALTER TABLE orders DROP COLUMN data`, `GRANT SELECT ON "Order Lines" TO PUBLIC`,
		`SELECT setval('orders_id_seq', 5)`)
	code, res, _, out, errOut := compare(dir)
	var kinds []string
	for _, d := range res.Schema {
		kinds = append(kinds, d.Kind+" "+d.Table)
	}
	slices.Sort(kinds)
	orders := tableResult(res, "public.orders")
	if code != 2 || !slices.Equal(kinds, []string{`column_missing public.orders`, `privilege public."Order Lines"`}) ||
		res.SequencesBehind != 1 || orders == nil || !orders.ChecksumDiffer {
		t.Fatalf("schema: code %d schema %q sequences behind %d orders %+v\n%s\n%s", code, kinds, res.SequencesBehind, orders, out, errOut)
	}
	mustContain(t, out, "SEQUENCE public.orders_id_seq: behind")

	// A truncated manifest, and a damaged rows file, are refused whole.
	damaged := filepath.Join(t.TempDir(), "damaged")
	if err := os.CopyFS(damaged, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	man := filepath.Join(damaged, verify.ManifestName)
	data, _ := os.ReadFile(man)
	if err := os.WriteFile(man, data[:len(data)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, _, out, errOut = compare(damaged)
	if code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "damaged or incomplete") {
		t.Fatalf("truncated manifest: code %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	if err := os.WriteFile(man, data, 0o600); err != nil {
		t.Fatal(err)
	}
	rows, _ := filepath.Glob(filepath.Join(damaged, "verify-rows", "*.zst"))
	rf, _ := os.ReadFile(rows[0])
	rf[len(rf)/2] ^= 0xff
	if err := os.WriteFile(rows[0], rf, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, _, out, errOut = compare(damaged)
	if code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "is damaged") {
		t.Fatalf("damaged rows file: code %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	// An empty location holds no manifest.
	code, _, _, _, errOut = compare(t.TempDir())
	if code != 1 || !strings.Contains(errOut, "no verify manifest") {
		t.Fatalf("no manifest: code %d %s", code, errOut)
	}
}
