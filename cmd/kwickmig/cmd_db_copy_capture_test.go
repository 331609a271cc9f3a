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

const copyCaptureDDL = `
CREATE SCHEMA sales;
CREATE TABLE items (id int PRIMARY KEY, v text);
CREATE TABLE orders (id int PRIMARY KEY);
CREATE TABLE sales.orders (id int PRIMARY KEY);
CREATE TABLE audit (at timestamptz, what text);
CREATE TABLE visits (id int, day date, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
CREATE TABLE visits_01 PARTITION OF visits FOR VALUES FROM ('2025-01-01') TO ('2025-02-01');
CREATE TABLE visits_02 PARTITION OF visits FOR VALUES FROM ('2025-02-01') TO ('2025-03-01');
INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 100) g;
INSERT INTO visits SELECT g, '2025-01-01'::date + g FROM generate_series(1, 50) g;`

// TestDBCopyRefusesUncapturedSet: with change capture installed, a copy
// whose tables are not the captured tables is refused before any data
// moves, naming the tables on each side; the same copy with the capture's
// exclusions runs. Names resolve by one rule: a bare name in two schemas
// is refused.
func TestDBCopyRefusesUncapturedSet(t *testing.T) {
	t.Parallel()
	e := kmtest.PG(t)
	kmtest.Exec(t, e.SourceURL, copyCaptureDDL)
	ctx := context.Background()
	ck := filepath.Join(t.TempDir(), "kwickmig.db")
	code, out, errs := runCLI(t, ctx, "db", "capture", "install", "--source", e.SourceURL, "--checkpoint", ck,
		"--exclude-table", "audit", "--exclude-table", "orders")
	if code != 1 || !strings.Contains(errs, "table orders is ambiguous: it matches public.orders, sales.orders") {
		t.Fatalf("install with an ambiguous exclude: code %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, ctx, "db", "capture", "install", "--source", e.SourceURL, "--checkpoint", ck,
		"--exclude-table", "audit", "--exclude-table", "sales.orders")
	if code != 0 || !strings.Contains(out, "capture installed on 3 tables") {
		t.Fatalf("install: code %d\n%s%s", code, out, errs)
	}
	kmtest.Exec(t, e.SourceURL, `CREATE TABLE later (id int PRIMARY KEY); INSERT INTO later VALUES (1)`)
	copyArgs := func(extra ...string) []string {
		return append([]string{"db", "copy", "--source", e.SourceURL, "--target", e.TargetURL, "--checkpoint", ck}, extra...)
	}
	matching := []string{"--exclude-table", "audit", "--exclude-table", "sales.orders"}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"no exclusions", nil, []string{"copied but not captured: public.audit, public.later, sales.orders;", "db capture add"}},
		{"table subset", []string{"--table", "items"}, []string{"captured but not copied: public.orders, public.visits;", "drop the --table or --exclude-table"}},
		{"partition left out", append([]string{"--exclude-table", "visits_02", "--exclude-table", "later"}, matching...),
			[]string{"captured but not copied: public.visits (partitions left out: public.visits_02);"}},
		{"table created after install", matching, []string{"copied but not captured: public.later;"}},
		{"ambiguous bare name", []string{"--exclude-table", "orders"}, []string{"table orders is ambiguous: it matches public.orders, sales.orders"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(t, ctx, copyArgs(tc.args...)...)
			if code != 1 {
				t.Fatalf("code %d, want 1\n%s%s", code, out, errs)
			}
			_, msg, _ := strings.Cut(errs, "kwickmig: ")
			if strings.Count(strings.TrimSpace(msg), "\n") > 0 {
				t.Errorf("error is more than one line:\n%s", errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain %q:\n%s", w, errs)
				}
			}
			if n := countRows(t, e.TargetURL, `SELECT count(*) FROM pg_class WHERE relname IN ('items', 'visits_01')`); n != 0 {
				t.Errorf("refused copy created %d tables on the target", n)
			}
		})
	}
	// db export feeds final-delta too (through db import): same refusal.
	expDir := filepath.Join(t.TempDir(), "export")
	code, out, errs = runCLI(t, ctx, "db", "export", "--source", e.SourceURL, "--out", expDir, "--checkpoint", ck, "--table", "items")
	if code != 1 || !strings.Contains(errs, "captured but not copied: public.orders, public.visits;") {
		t.Fatalf("export of a subset: code %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(expDir, "manifest.json")); err == nil {
		t.Error("refused export wrote a manifest")
	}
	// Put the late table under capture: the copy with the install's
	// exclusions now matches and runs.
	if code, out, errs := runCLI(t, ctx, "db", "capture", "add", "later", "--source", e.SourceURL, "--checkpoint", ck); code != 0 {
		t.Fatalf("capture add: code %d\n%s%s", code, out, errs)
	}
	if code, out, errs := runCLI(t, ctx, copyArgs(matching...)...); code != 0 {
		t.Fatalf("copy with the capture's exclusions: code %d\n%s%s", code, out, errs)
	}
	if n := countRows(t, e.TargetURL, `SELECT (SELECT count(*) FROM items) + (SELECT count(*) FROM visits) + (SELECT count(*) FROM later)`); n != 151 {
		t.Errorf("target rows %d, want 151", n)
	}
	// A role that may read the tables but not kwickmig's table list (it
	// sees the schema, so it knows capture is on): refused with the grant
	// to give, not waved through.
	role := kmtest.RandName("kw_copier_")
	kmtest.Exec(t, e.SourceURL, "CREATE ROLE "+role+" LOGIN PASSWORD 'pw'",
		"GRANT USAGE ON SCHEMA sales, kwickmig TO "+role, "GRANT SELECT ON ALL TABLES IN SCHEMA public, sales TO "+role)
	t.Cleanup(func() { kmtest.Exec(t, e.SourceURL, "DROP OWNED BY "+role, "DROP ROLE "+role) })
	u, err := url.Parse(e.SourceURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, "pw")
	code, out, errs = runCLI(t, ctx, "db", "copy", "--source", u.String(), "--target", e.TargetURL, "--checkpoint", filepath.Join(t.TempDir(), "r.db"))
	if code != 1 || !strings.Contains(errs, "may not read its table list") || !strings.Contains(errs, "SELECT on kwickmig.tables") {
		t.Fatalf("copy as a role without access to kwickmig: code %d\n%s%s", code, out, errs)
	}
}

// countRows runs a query returning one number on the database at dbURL.
func countRows(t *testing.T, dbURL, query string) int64 {
	t.Helper()
	c, err := pgxConnect(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int64
	if err := c.QueryRow(context.Background(), query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}
