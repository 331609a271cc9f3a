package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/kmtest"
)

func testGlobals(t *testing.T) (*globalOptions, *bytes.Buffer) {
	t.Helper()
	var out bytes.Buffer
	g := &globalOptions{LogFormat: "text", LogLevel: "error", stdout: &out, stderr: &out}
	if err := g.setup(); err != nil {
		t.Fatal(err)
	}
	return g, &out
}

// replaceURL swaps part of a postgres:// URL.
func replaceURL(url, old, new string) string { return strings.Replace(url, old, new, 1) }

func TestDBCopyBadConnections(t *testing.T) {
	e := kmtest.PG(t)
	const secret = "s3cr3t-Pa55"
	srcPW := between(e.SourceURL, "//postgres:", "@")
	dstPW := between(e.TargetURL, "//postgres:", "@")
	for _, tc := range []struct {
		name, source, target string
		want                 []string
	}{
		{name: "target wrong password", source: e.SourceURL, target: replaceURL(e.TargetURL, dstPW, secret),
			want: []string{"target: cannot connect", "password authentication failed"}},
		{name: "source wrong password", source: replaceURL(e.SourceURL, srcPW, secret), target: e.TargetURL,
			want: []string{"source: cannot connect", "password authentication failed"}},
		{name: "source missing database", source: replaceURL(e.SourceURL, "/"+e.DBName, "/nosuchdb"), target: e.TargetURL,
			want: []string{"source: cannot connect", `database "nosuchdb"`}},
		{name: "target unreachable", source: e.SourceURL, target: "postgres://postgres:" + secret + "@127.0.0.1:1/x?connect_timeout=5",
			want: []string{"target: cannot connect to 127.0.0.1:1"}},
		{name: "source invalid", source: "host=127.0.0.1 port=notaport password=" + secret, target: e.TargetURL,
			want: []string{"source: invalid connection string"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, out := testGlobals(t)
			opts := DBCopyOptions{Source: tc.source, Target: tc.target, Jobs: 1, IndexJobs: 1, SplitLargerThan: "0",
				Checkpoint: filepath.Join(t.TempDir(), "ck.db")}
			err := runDBCopy(context.Background(), opts, g)
			if err == nil {
				t.Fatal("copy succeeded, want a connection error")
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q, want it to contain %q", msg, w)
				}
			}
			for _, pw := range []string{secret, srcPW, dstPW} {
				if strings.Contains(msg, pw) || strings.Contains(out.String(), pw) {
					t.Errorf("password %q appears in %q / output %q", pw, msg, out.String())
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error %q is more than one line", msg)
			}
			if got := exitCode(context.Background(), err); got != ExitCannotRun {
				t.Errorf("exit code=%d, want %d", got, ExitCannotRun)
			}
		})
	}
}

func TestDBCopyUsage(t *testing.T) {
	t.Setenv("KWICKMIG_SOURCE_URL", "")
	t.Setenv("KWICKMIG_TARGET_URL", "")
	for _, tc := range []struct {
		name string
		opts DBCopyOptions
		want string
	}{
		{"no source", DBCopyOptions{Target: "x", Jobs: 1, IndexJobs: 1, SplitLargerThan: "1GB"}, "--source (or KWICKMIG_SOURCE_URL) is required"},
		{"no target", DBCopyOptions{Source: "x", Jobs: 1, IndexJobs: 1, SplitLargerThan: "1GB"}, "--target (or KWICKMIG_TARGET_URL) is required"},
		{"bad size", DBCopyOptions{Source: "x", Target: "y", Jobs: 1, IndexJobs: 1, SplitLargerThan: "lots"}, "--split-larger-than"},
		{"zero jobs", DBCopyOptions{Source: "x", Target: "y", Jobs: 0, IndexJobs: 1, SplitLargerThan: "1GB"}, "--jobs"},
		{"bad work mem", DBCopyOptions{Source: "x", Target: "y", Jobs: 1, IndexJobs: 1, SplitLargerThan: "1GB", WorkMem: "16 megs"}, `--maintenance-work-mem "16 megs"`},
		{"bad index workers", DBCopyOptions{Source: "x", Target: "y", Jobs: 1, IndexJobs: 1, SplitLargerThan: "1GB", IndexWorkers: -2}, "--index-workers -2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, _ := testGlobals(t)
			err := runDBCopy(context.Background(), tc.opts, g)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err=%v, want %q", err, tc.want)
			}
			if _, ok := err.(*usageError); !ok {
				t.Errorf("err is %T, want a usage error (exit 1)", err)
			}
		})
	}
}

// TestDBCopyCommand runs db copy end to end with the URLs from the
// environment and a JSON report.
func TestDBCopyCommand(t *testing.T) {
	e := kmtest.PG(t)
	kmtest.Exec(t, e.SourceURL, `CREATE TABLE "Receipts" (id bigserial PRIMARY KEY, body jsonb);
		INSERT INTO "Receipts" (body) SELECT jsonb_build_object('n', i) FROM generate_series(1, 500) i`)
	t.Setenv("KWICKMIG_SOURCE_URL", e.SourceURL)
	t.Setenv("KWICKMIG_TARGET_URL", e.TargetURL)
	g, out := testGlobals(t)
	report := filepath.Join(t.TempDir(), "report.json")
	opts := DBCopyOptions{Jobs: 2, IndexJobs: 2, SplitLargerThan: "512MB", Report: report,
		Checkpoint: filepath.Join(t.TempDir(), "ck.db")}
	if err := runDBCopy(context.Background(), opts, g); err != nil {
		t.Fatalf("db copy: %v", err)
	}
	if !strings.Contains(out.String(), `public.Receipts`) || !strings.Contains(out.String(), "500") {
		t.Errorf("summary %q, want the table and its 500 rows", out.String())
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Rows     int64  `json:"rows"`
		Snapshot string `json:"snapshot"`
		Source   string `json:"source"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	pw := between(e.SourceURL, "//postgres:", "@")
	if r.Rows != 500 || r.Snapshot == "" || strings.Contains(string(data), pw) {
		t.Errorf("report rows=%d snapshot=%q (password present: %v), want 500 rows, a snapshot, no password",
			r.Rows, r.Snapshot, strings.Contains(string(data), pw))
	}
}

func between(s, a, b string) string {
	i := strings.Index(s, a)
	if i < 0 {
		return ""
	}
	s = s[i+len(a):]
	j := strings.Index(s, b)
	if j < 0 {
		return ""
	}
	return s[:j]
}

// TestDBExportImportCommand runs db export and db import through a
// directory, with flags parsed by cobra as a user would give them.
func TestDBExportImportCommand(t *testing.T) {
	e := kmtest.PG(t)
	kmtest.Exec(t, e.SourceURL, `CREATE TABLE "a,b" (id int PRIMARY KEY); INSERT INTO "a,b" SELECT generate_series(1, 10);
		CREATE TABLE other (id int); INSERT INTO other VALUES (1)`)
	dir := filepath.Join(t.TempDir(), "exp")
	ck := filepath.Join(t.TempDir(), "ck.db")
	for _, args := range [][]string{
		{"db", "export", "--source", e.SourceURL, "--out", dir, "--table", "a,b", "--checkpoint", ck},
		{"db", "import", "--target", e.TargetURL, "--in", dir, "--checkpoint", ck, "--jobs", "1"},
	} {
		root := newRootCommand()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append(args, "--log-level", "error"))
		if err := root.ExecuteContext(context.Background()); err != nil {
			t.Fatalf("kwickmig %s: %v", strings.Join(args[:2], " "), err)
		}
	}
	var n int
	c, err := pgxConnect(e.TargetURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if err := c.QueryRow(context.Background(), `SELECT count(*) FROM "a,b"`).Scan(&n); err != nil || n != 10 {
		t.Errorf(`target "a,b" rows=%d (%v), want 10`, n, err)
	}
	var other bool
	if err := c.QueryRow(context.Background(), `SELECT to_regclass('other') IS NOT NULL`).Scan(&other); err != nil || other {
		t.Errorf("target has table other=%v (%v), want it left out by --table", other, err)
	}
}

func pgxConnect(url string) (*pgx.Conn, error) { return pgx.Connect(context.Background(), url) }

// TestDBCopyPartial: a run that finishes with an item it could not do (a
// sequence missing on a hand-made target schema) exits 2 and names it.
func TestDBCopyPartial(t *testing.T) {
	e := kmtest.PG(t)
	kmtest.Exec(t, e.SourceURL, `CREATE TABLE t (id serial PRIMARY KEY); INSERT INTO t DEFAULT VALUES`)
	kmtest.Exec(t, e.TargetURL, `CREATE TABLE t (id int PRIMARY KEY)`)
	g, out := testGlobals(t)
	opts := DBCopyOptions{Source: e.SourceURL, Target: e.TargetURL, Jobs: 1, IndexJobs: 1, SplitLargerThan: "0",
		DataOnly: true, Checkpoint: filepath.Join(t.TempDir(), "ck.db")}
	err := runDBCopy(context.Background(), opts, g)
	if got := exitCode(context.Background(), err); got != ExitPartial {
		t.Fatalf("exit code=%d (err %v), want %d", got, err, ExitPartial)
	}
	if !strings.Contains(err.Error(), `sequence "public"."t_id_seq" not set`) || !strings.Contains(out.String(), "failed:") {
		t.Errorf("err %q / summary %q, want the sequence named", err, out.String())
	}
}
