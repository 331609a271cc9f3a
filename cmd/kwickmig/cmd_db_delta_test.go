package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/pgdelta"
)

const deltaTestDDL = `CREATE TABLE "Order Lines" (id int PRIMARY KEY, "Item" text, qty numeric);
CREATE TABLE stores (code text PRIMARY KEY, name text)`

// deltaPair is a source/target pair with identical (empty) tables, capture
// installed by the CLI and the baseline recorded, as db copy would leave it.
func deltaPair(t *testing.T) *kmtest.PGEnv {
	t.Helper()
	e := kmtest.PG(t)
	kmtest.Exec(t, e.SourceURL, deltaTestDDL)
	kmtest.Exec(t, e.TargetURL, deltaTestDDL)
	ctx := context.Background()
	code, out, errs := runCLI(t, ctx, "db", "capture", "install", "--source", e.SourceURL, "--checkpoint", filepath.Join(t.TempDir(), "cp.db"))
	if code != 0 || !strings.Contains(out, "capture installed on 2 tables") {
		t.Fatalf("install: code %d\n%s%s", code, out, errs)
	}
	src, err := pgx.Connect(ctx, e.SourceURL)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close(ctx)
	tgt, err := pgx.Connect(ctx, e.TargetURL)
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close(ctx)
	var snap string
	if err := src.QueryRow(ctx, `SELECT pg_current_snapshot()::text`).Scan(&snap); err != nil {
		t.Fatal(err)
	}
	if err := pgdelta.RecordBaseline(ctx, tgt, snap); err != nil {
		t.Fatal(err)
	}
	kmtest.Exec(t, e.SourceURL,
		`INSERT INTO "Order Lines" SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, 40) g`,
		`INSERT INTO stores VALUES ('S1', 'Central'), ('S2', 'Harbour')`,
		`UPDATE "Order Lines" SET qty = 'NaN' WHERE id = 7`,
		`DELETE FROM stores WHERE code = 'S2'`)
	return e
}

func rowsOf(t *testing.T, url string) string {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var s string
	err = c.QueryRow(ctx, `SELECT (SELECT string_agg(x::text, ';' ORDER BY id) FROM "Order Lines" x) || '|' ||
		(SELECT string_agg(s::text, ';' ORDER BY code) FROM stores s)`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDBFinalDeltaCLI(t *testing.T) {
	e := deltaPair(t)
	ctx := context.Background()
	dir := t.TempDir()
	cp, report := filepath.Join(dir, "kwickmig.db"), filepath.Join(dir, "delta.json")

	code, out, errs := runCLI(t, ctx, "db", "capture", "status", "--source", e.SourceURL, "--checkpoint", cp)
	if code != 0 || !strings.Contains(out, "backlog since install") || !strings.Contains(out, ": 44 rows") {
		t.Fatalf("status: code %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, ctx, "db", "final-delta", "--source", e.SourceURL, "--target", e.TargetURL, "--checkpoint", cp, "--report", report,
		"--batch-rows", "10")
	if code != 0 || !strings.Contains(out, "round 1: applied 44 changes") {
		t.Fatalf("final-delta: code %d\n%s%s", code, out, errs)
	}
	// The progress line knows the backlog the round started with: every
	// 4th batch of 10 is logged against the 44 captured changes.
	if !strings.Contains(errs, "total=44 progress=40/44") {
		t.Fatalf("final-delta progress: want total=44 progress=40/44 in\n%s", errs)
	}
	if got, want := rowsOf(t, e.TargetURL), rowsOf(t, e.SourceURL); got != want {
		t.Fatalf("target %s\nwant %s", got, want)
	}
	var rep struct {
		ExitCode int
		Rows     int64
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rep); err != nil || rep.Rows != 44 {
		t.Fatalf("report %s: %v", data, err)
	}
	// a second run, from the environment, applies nothing
	t.Setenv("KWICKMIG_SOURCE_URL", e.SourceURL)
	t.Setenv("KWICKMIG_TARGET_URL", e.TargetURL)
	code, out, errs = runCLI(t, ctx, "db", "final-delta", "--checkpoint", cp)
	if code != 0 || !strings.Contains(out, "round 2: applied 0 changes") {
		t.Fatalf("second final-delta: code %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, ctx, "db", "capture", "status", "--checkpoint", cp)
	if code != 0 || !strings.Contains(out, "since round 2: none") {
		t.Fatalf("status after rounds: code %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, ctx, "db", "capture", "remove", "--checkpoint", cp)
	if code != 0 || !strings.Contains(out, "capture removed") {
		t.Fatalf("remove: code %d\n%s%s", code, out, errs)
	}
	code, out, _ = runCLI(t, ctx, "db", "capture", "status", "--checkpoint", cp)
	if code != 0 || !strings.Contains(out, "not installed") {
		t.Fatalf("status after remove: code %d\n%s", code, out)
	}
}

func TestDBImportDeltaCLI(t *testing.T) {
	t.Parallel()
	e := deltaPair(t)
	ctx := context.Background()
	dir := t.TempDir()
	cp, batches := filepath.Join(dir, "kwickmig.db"), filepath.Join(dir, "delta")
	code, out, errs := runCLI(t, ctx, "db", "final-delta", "--source", e.SourceURL, "--out", batches, "--batch-rows", "10", "--checkpoint", cp)
	if code != 0 || !strings.Contains(out, "round 1: exported 44 changes in 5 files") {
		t.Fatalf("final-delta --out: code %d\n%s%s", code, out, errs)
	}
	for i := 0; i < 2; i++ {
		code, out, errs = runCLI(t, ctx, "db", "import-delta", "--target", e.TargetURL, "--in", batches, "--checkpoint", cp)
		want := "round 1: applied 44 changes"
		if i == 1 {
			want = "round 1: already applied, skipped"
		}
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("import-delta #%d: code %d, want %q\n%s%s", i+1, code, want, out, errs)
		}
	}
	if got, want := rowsOf(t, e.TargetURL), rowsOf(t, e.SourceURL); got != want {
		t.Fatalf("target %s\nwant %s", got, want)
	}
	// the source side may not switch to --target now
	code, _, errs = runCLI(t, ctx, "db", "final-delta", "--source", e.SourceURL, "--target", e.TargetURL, "--checkpoint", cp)
	if code != ExitCannotRun || !strings.Contains(errs, "--out") {
		t.Fatalf("mixing modes: code %d\n%s", code, errs)
	}
}

func TestDBDeltaS3CLI(t *testing.T) {
	s := kmtest.S3(t)
	s.SetAWSEnv(t)
	e := deltaPair(t)
	ctx := context.Background()
	cp := filepath.Join(t.TempDir(), "kwickmig.db")
	url := "s3://" + s.Bucket + "/delta"
	code, out, errs := runCLI(t, ctx, "db", "final-delta", "--source", e.SourceURL, "--out", url, "--endpoint-url", s.Endpoint, "--checkpoint", cp)
	if code != 0 || !strings.Contains(out, "round 1: exported 44 changes") {
		t.Fatalf("final-delta --out s3: code %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, ctx, "db", "import-delta", "--target", e.TargetURL, "--in", url, "--endpoint-url", s.Endpoint, "--checkpoint", cp)
	if code != 0 || !strings.Contains(out, "round 1: applied 44 changes") {
		t.Fatalf("import-delta s3: code %d\n%s%s", code, out, errs)
	}
	if got, want := rowsOf(t, e.TargetURL), rowsOf(t, e.SourceURL); got != want {
		t.Fatalf("target %s\nwant %s", got, want)
	}
}

func TestDBDeltaBadInput(t *testing.T) {
	e := kmtest.PG(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cp := filepath.Join(t.TempDir(), "kwickmig.db")
	badPw := replaceURL(e.SourceURL, "postgres:", "postgres:") // same user
	if i := strings.Index(badPw, "@"); i > 0 {
		badPw = badPw[:strings.LastIndex(badPw[:i], ":")+1] + "wrongSecret42" + badPw[i:]
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no source", []string{"db", "capture", "install"}, ExitCannotRun, "--source is required"},
		{"no target or out", []string{"db", "final-delta", "--source", e.SourceURL}, ExitCannotRun, "--target is required"},
		{"target and out", []string{"db", "final-delta", "--source", e.SourceURL, "--target", e.TargetURL, "--out", "x"}, ExitCannotRun, "not both"},
		{"no in", []string{"db", "import-delta", "--target", e.TargetURL}, ExitCannotRun, "--in is required"},
		{"wrong password", []string{"db", "capture", "status", "--source", badPw}, ExitCannotRun, "source: cannot connect"},
		{"unreachable", []string{"db", "capture", "status", "--source", "postgres://u:pw@127.0.0.1:1/db?connect_timeout=2"}, ExitCannotRun, "source: cannot connect"},
		{"not installed", []string{"db", "final-delta", "--source", e.SourceURL, "--target", e.TargetURL}, ExitCannotRun, "change capture is not installed"},
		{"no baseline", []string{"db", "import-delta", "--target", e.TargetURL, "--in", t.TempDir()}, ExitCannotRun, "no baseline"},
		{"bad location", []string{"db", "import-delta", "--target", e.TargetURL, "--in", "ftp://x/y"}, ExitCannotRun, "want a directory or s3://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KWICKMIG_SOURCE_URL", "")
			t.Setenv("KWICKMIG_TARGET_URL", "")
			code, out, errs := runCLI(t, ctx, append(tc.args, "--checkpoint", cp)...)
			if code != tc.code || !strings.Contains(errs, tc.want) {
				t.Fatalf("code %d, want %d; stderr %q, want %q (stdout %q)", code, tc.code, errs, tc.want, out)
			}
			if strings.Contains(errs, "wrongSecret42") || strings.Contains(errs, "\n\n") {
				t.Fatalf("stderr leaks the password or is not one line: %q", errs)
			}
		})
	}
}
