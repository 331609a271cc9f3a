package pgcopy

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/pgdelta"
)

// TestBaselineWithCapture: with change capture installed before the copy,
// copy and import record the snapshot as round 0 on the target, and neither
// the kwickmig schema nor its triggers are copied.
func TestBaselineWithCapture(t *testing.T) {
	t.Parallel()
	e := kmtest.PG(t)
	kmtest.Exec(t, e.SourceURL, `CREATE TABLE "Orders" (id int PRIMARY KEY, v text);
		INSERT INTO "Orders" SELECT i, 'v' || i FROM generate_series(1, 10) i`)
	src := mustConnect(t, e.SourceURL)
	if _, err := pgdelta.Install(context.Background(), src, pgdelta.InstallOptions{}); err != nil {
		t.Fatalf("capture install: %v", err)
	}
	kmtest.Exec(t, e.SourceURL, `INSERT INTO "Orders" VALUES (11, 'logged')`)

	opts := testOptions(t, e)
	res, err := Copy(ctxT(t), opts)
	if err != nil {
		t.Fatalf("copy: %v", err)
	}
	if !res.Baseline {
		t.Errorf("copy baseline_recorded=false, want true")
	}
	checkBaseline(t, e.TargetURL, res.Snapshot)
	sameTables(t, e, 11, `public."Orders"`)

	// The same through export and import, into a second target.
	opts.Location = filepath.Join(t.TempDir(), "export")
	exp, err := Export(ctxT(t), opts)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	man := readManifestFile(t, opts.Location)
	if !man.CaptureInstalled || man.Snapshot != exp.Snapshot {
		t.Errorf("manifest capture_installed=%v snapshot=%q, want true and %q", man.CaptureInstalled, man.Snapshot, exp.Snapshot)
	}
	e2 := kmtest.PG(t)
	iopts := testOptions(t, e2)
	iopts.Location = opts.Location
	ires, err := Import(ctxT(t), iopts)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if !ires.Baseline {
		t.Errorf("import baseline_recorded=false, want true")
	}
	checkBaseline(t, e2.TargetURL, exp.Snapshot)
}

func checkBaseline(t *testing.T, url, snapshot string) {
	t.Helper()
	dst := mustConnect(t, url)
	var got string
	if err := dst.QueryRow(context.Background(), "SELECT snapshot FROM kwickmig.rounds WHERE round = 0").Scan(&got); err != nil {
		t.Fatalf("read baseline: %v", err)
	}
	if got != snapshot || snapshot == "" {
		t.Errorf("baseline=%q, want the copy's snapshot %q", got, snapshot)
	}
	if n := queryInt(t, url, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'kwickmig%'"); n != 0 {
		t.Errorf("target has %d kwickmig triggers, want 0", n)
	}
	if n := queryInt(t, url, "SELECT count(*) FROM pg_class WHERE relname = 'log' AND relnamespace = 'kwickmig'::regnamespace"); n != 0 {
		t.Errorf("target has the source's kwickmig.log (%d), want it left out", n)
	}
}
