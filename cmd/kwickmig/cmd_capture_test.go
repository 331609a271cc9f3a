package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/kmtest"
)

// kwickmigLeftovers lists every catalog object of the database at url whose
// name mentions kwickmig, and the database's capture role if it exists.
func kwickmigLeftovers(t *testing.T, url string) []string {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, `
		SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname ILIKE '%kwickmig%'
		UNION ALL SELECT 'relation ' || relname FROM pg_class WHERE relname ILIKE '%kwickmig%'
		UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE proname ILIKE '%kwickmig%' OR prosrc ILIKE '%kwickmig.log%'
		UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE tgname ILIKE '%kwickmig%'
		UNION ALL SELECT 'event trigger ' || evtname FROM pg_event_trigger WHERE evtname ILIKE '%kwickmig%'
		UNION ALL SELECT 'type ' || typname FROM pg_type WHERE typname ILIKE '%kwickmig%'
		UNION ALL SELECT 'role ' || rolname FROM pg_roles
			WHERE rolname = 'kwickmig_capture_' || (SELECT oid FROM pg_database WHERE datname = current_database())
		UNION ALL SELECT 'advisory lock' FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
	if err != nil {
		t.Fatal(err)
	}
	left, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return left
}

// TestCaptureRemoveSourceAndTarget: after a delta round, capture remove
// --target leaves nothing of kwickmig on either side; a delta run holding
// the target's lock makes it refuse instead of dropping under it.
func TestCaptureRemoveSourceAndTarget(t *testing.T) {
	t.Parallel()
	e := deltaPair(t)
	ctx := context.Background()
	cp := filepath.Join(t.TempDir(), "kwickmig.db")
	code, out, errs := runCLI(t, ctx, "db", "final-delta", "--source", e.SourceURL, "--target", e.TargetURL, "--checkpoint", cp)
	if code != 0 {
		t.Fatalf("final-delta: code %d\n%s%s", code, out, errs)
	}
	if len(kwickmigLeftovers(t, e.SourceURL)) == 0 || len(kwickmigLeftovers(t, e.TargetURL)) == 0 {
		t.Fatal("the leftover query finds nothing even while capture is installed")
	}

	// A run in progress on the target (its advisory lock held): refused.
	busy, err := pgx.Connect(ctx, e.TargetURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := busy.Exec(ctx, `SELECT pg_advisory_lock(7743778375120284788)`); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runCLI(t, ctx, "db", "capture", "remove", "--source", e.SourceURL, "--target", e.TargetURL, "--checkpoint", cp)
	if code != 1 || !strings.Contains(errs, "another kwickmig delta run") {
		t.Fatalf("remove during a delta run: code %d\n%s%s", code, out, errs)
	}
	if _, err := busy.Exec(ctx, `SELECT pg_advisory_unlock(7743778375120284788)`); err != nil {
		t.Fatal(err)
	}
	busy.Close(ctx)

	code, out, errs = runCLI(t, ctx, "db", "capture", "remove", "--source", e.SourceURL, "--target", e.TargetURL, "--checkpoint", cp)
	if code != 0 || !strings.Contains(out, "target: kwickmig schema") {
		t.Fatalf("remove: code %d\n%s%s", code, out, errs)
	}
	for side, url := range map[string]string{"source": e.SourceURL, "target": e.TargetURL} {
		if left := kwickmigLeftovers(t, url); len(left) > 0 {
			t.Errorf("%s keeps %s after capture remove", side, strings.Join(left, ", "))
		}
	}
	// the application's data stays
	if got, want := rowsOf(t, e.TargetURL), rowsOf(t, e.SourceURL); got != want {
		t.Fatalf("target %s\nwant %s", got, want)
	}
	code, out, errs = runCLI(t, ctx, "db", "capture", "remove", "--source", e.SourceURL, "--target", e.TargetURL, "--checkpoint", cp)
	if code != 0 || !strings.Contains(out, "nothing to remove there") {
		t.Fatalf("second remove: code %d\n%s%s", code, out, errs)
	}
}

// TestCaptureStatusDrift: a column added to a captured table and a table
// created after install are reported by capture status (exit 2) exactly as
// final-delta then refuses them.
func TestCaptureStatusDrift(t *testing.T) {
	t.Parallel()
	e := deltaPair(t)
	ctx := context.Background()
	cp := filepath.Join(t.TempDir(), "kwickmig.db")
	code, out, errs := runCLI(t, ctx, "db", "capture", "status", "--source", e.SourceURL, "--checkpoint", cp)
	if code != 0 || !strings.Contains(out, "schema: unchanged since install") {
		t.Fatalf("status before drift: code %d\n%s%s", code, out, errs)
	}
	kmtest.Exec(t, e.SourceURL, `ALTER TABLE stores ADD COLUMN opened date`, `CREATE TABLE late_arrivals (id int PRIMARY KEY)`)
	report := filepath.Join(t.TempDir(), "status.json")
	code, out, errs = runCLI(t, ctx, "db", "capture", "status", "--source", e.SourceURL, "--checkpoint", cp, "--report", report)
	want := []string{"public.late_arrivals (created after capture install, not captured)", "public.stores (columns changed)"}
	for _, w := range want {
		if code != 2 || !strings.Contains(out, "  "+w+"\n") {
			t.Fatalf("status after drift: code %d, want 2 and %q\n%s%s", code, w, out, errs)
		}
	}
	if !strings.Contains(out, "not captured (created after install): public.late_arrivals") {
		t.Fatalf("status does not list the uncaptured table:\n%s", out)
	}
	data, err := os.ReadFile(report)
	if err != nil || !strings.Contains(string(data), `"exit_code": 2`) || !strings.Contains(string(data), "public.stores (columns changed)") {
		t.Fatalf("report %s: %v", data, err)
	}
	code, out, errs = runCLI(t, ctx, "db", "final-delta", "--source", e.SourceURL, "--target", e.TargetURL, "--checkpoint", cp)
	if code != 1 || !strings.Contains(errs, strings.Join(want, ", ")) {
		t.Fatalf("final-delta: code %d, want 1 refusing %v\n%s%s", code, want, out, errs)
	}
}

// tableText is every row of table (ordered by its text) on url, and the
// table's indexes and column defaults.
func tableText(t *testing.T, url, table string) string {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var s string
	err = c.QueryRow(ctx, `SELECT coalesce((SELECT string_agg(x::text, ';' ORDER BY x::text) FROM `+table+` x), '') || '|' ||
		(SELECT string_agg(indexdef, ';' ORDER BY indexname) FROM pg_indexes WHERE tablename = '`+table+`') || '|' ||
		(SELECT string_agg(coalesce(column_default, '-'), ';' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = '`+table+`')`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const promosDDL = `CREATE TABLE promos (id serial PRIMARY KEY, code text NOT NULL UNIQUE, pct numeric CHECK (pct > 0), tags text[], ok boolean);
	CREATE INDEX promos_pct ON promos (pct);
	INSERT INTO promos (code, pct, tags, ok) SELECT 'P' || g, g, ARRAY['a', NULL], g % 2 = 0 FROM generate_series(1, 20) g`

const promosChanges = `UPDATE promos SET pct = pct * 2 WHERE id % 3 = 0;
	DELETE FROM promos WHERE id = 5;
	UPDATE promos SET id = 100 WHERE id = 6;
	INSERT INTO promos (code, pct) VALUES ('late', 1.5)`

// TestCaptureAdd: a table created after install stops final-delta and shows
// in capture status; capture add brings it under capture, and the next
// final-delta creates it on the target (indexes, defaults, its sequence)
// with all its rows, changes made after the add included.
func TestCaptureAdd(t *testing.T) {
	t.Parallel()
	e := deltaPair(t)
	ctx := context.Background()
	cp := filepath.Join(t.TempDir(), "kwickmig.db")
	kmtest.Exec(t, e.SourceURL, promosDDL, `CREATE TABLE visits (id int, day date, n int, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
		CREATE TABLE visits_01 PARTITION OF visits FOR VALUES FROM ('2025-01-01') TO ('2025-02-01');
		CREATE TABLE visits_02 PARTITION OF visits FOR VALUES FROM ('2025-02-01') TO ('2025-03-01');
		INSERT INTO visits SELECT g, '2025-01-01'::date + g, g FROM generate_series(1, 50) g`)
	code, out, errs := runCLI(t, ctx, "db", "capture", "status", "--source", e.SourceURL, "--checkpoint", cp)
	if code != 2 || !strings.Contains(out, "not captured (created after install): public.promos") {
		t.Fatalf("status: code %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, ctx, "db", "capture", "add", "promos", "nosuch", "--source", e.SourceURL, "--checkpoint", cp)
	if code != 1 || !strings.Contains(errs, "nosuch (no such table on the source") {
		t.Fatalf("add of a missing table: code %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, ctx, "db", "capture", "add", "promos", "stores", "visits", "--source", e.SourceURL, "--checkpoint", cp)
	if code != 0 || !strings.Contains(out, "capture added on 2 tables: public.promos, public.visits (70 rows logged") || !strings.Contains(out, "already captured: public.stores") {
		t.Fatalf("add: code %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, ctx, "db", "capture", "status", "--source", e.SourceURL, "--checkpoint", cp)
	if code != 0 || strings.Contains(out, "not captured") {
		t.Fatalf("status after add: code %d\n%s%s", code, out, errs)
	}
	kmtest.Exec(t, e.SourceURL, promosChanges, `UPDATE visits SET n = -n WHERE id % 4 = 0`, `TRUNCATE visits_02`)
	code, out, errs = runCLI(t, ctx, "db", "final-delta", "--source", e.SourceURL, "--target", e.TargetURL, "--checkpoint", cp)
	if code != 0 {
		t.Fatalf("final-delta: code %d\n%s%s", code, out, errs)
	}
	if got, want := tableText(t, e.TargetURL, "visits"), tableText(t, e.SourceURL, "visits"); got != want {
		t.Fatalf("target visits:\n%s\nwant\n%s", got, want)
	}
	if got, want := tableText(t, e.TargetURL, "promos"), tableText(t, e.SourceURL, "promos"); got != want {
		t.Fatalf("target promos:\n%s\nwant\n%s", got, want)
	}
	if got, want := rowsOf(t, e.TargetURL), rowsOf(t, e.SourceURL); got != want {
		t.Fatalf("target %s\nwant %s", got, want)
	}
	// the serial's sequence came along and follows the source
	kmtest.Exec(t, e.SourceURL, `INSERT INTO promos (code) VALUES ('after')`)
	code, out, errs = runCLI(t, ctx, "db", "final-delta", "--source", e.SourceURL, "--target", e.TargetURL, "--checkpoint", cp)
	if code != 0 || !strings.Contains(out, "applied 1 changes") {
		t.Fatalf("second final-delta: code %d\n%s%s", code, out, errs)
	}
	if got, want := tableText(t, e.TargetURL, "promos"), tableText(t, e.SourceURL, "promos"); got != want {
		t.Fatalf("target promos:\n%s\nwant\n%s", got, want)
	}
	kmtest.Exec(t, e.TargetURL, `INSERT INTO promos (code) VALUES ('target next')`)
	kmtest.Exec(t, e.SourceURL, `INSERT INTO promos (code) VALUES ('target next')`)
	if got, want := tableText(t, e.TargetURL, "promos"), tableText(t, e.SourceURL, "promos"); got != want {
		t.Fatalf("sequences differ: target promos:\n%s\nwant\n%s", got, want)
	}
}

// TestCaptureAddOffline: the same through final-delta --out and
// import-delta: the round's manifest carries the added table's schema.
func TestCaptureAddOffline(t *testing.T) {
	t.Parallel()
	e := deltaPair(t)
	ctx := context.Background()
	dir := t.TempDir()
	cp, batches := filepath.Join(dir, "kwickmig.db"), filepath.Join(dir, "delta")
	kmtest.Exec(t, e.SourceURL, promosDDL)
	code, out, errs := runCLI(t, ctx, "db", "capture", "add", "public.promos", "--source", e.SourceURL, "--checkpoint", cp)
	if code != 0 {
		t.Fatalf("add: code %d\n%s%s", code, out, errs)
	}
	kmtest.Exec(t, e.SourceURL, promosChanges)
	code, out, errs = runCLI(t, ctx, "db", "final-delta", "--source", e.SourceURL, "--out", batches, "--checkpoint", cp)
	if code != 0 {
		t.Fatalf("final-delta --out: code %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, ctx, "db", "import-delta", "--target", e.TargetURL, "--in", batches, "--checkpoint", cp)
	if code != 0 {
		t.Fatalf("import-delta: code %d\n%s%s", code, out, errs)
	}
	if got, want := tableText(t, e.TargetURL, "promos"), tableText(t, e.SourceURL, "promos"); got != want {
		t.Fatalf("target promos:\n%s\nwant\n%s", got, want)
	}
	if got, want := rowsOf(t, e.TargetURL), rowsOf(t, e.SourceURL); got != want {
		t.Fatalf("target %s\nwant %s", got, want)
	}
}
