package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
)

// TestDBImportDeltaManyLocations: round 1 is written to a directory, round
// 2 to an S3 prefix of its own (final-delta --out delta-2). import-delta
// with only the prefix is refused (exit 1) naming round 1; with --in for
// both it applies them in order, and the target equals the source.
func TestDBImportDeltaManyLocations(t *testing.T) {
	s := kmtest.S3(t)
	s.SetAWSEnv(t)
	e := deltaPair(t)
	ctx := context.Background()
	cp := filepath.Join(t.TempDir(), "kwickmig.db")
	dir := filepath.Join(t.TempDir(), "delta-1")
	prefix := "s3://" + s.Bucket + "/delta-2"
	if code, out, errs := runCLI(t, ctx, "db", "final-delta", "--source", e.SourceURL, "--out", dir, "--checkpoint", cp); code != 0 {
		t.Fatalf("final-delta --out %s: code %d\n%s%s", dir, code, out, errs)
	}
	kmtest.Exec(t, e.SourceURL, `UPDATE "Order Lines" SET "Item" = 'late' WHERE id % 4 = 0`, `INSERT INTO stores VALUES ('S3', 'Pier')`)
	code, out, errs := runCLI(t, ctx, "db", "final-delta", "--source", e.SourceURL, "--out", prefix, "--endpoint-url", s.Endpoint, "--checkpoint", cp)
	if code != 0 || !strings.Contains(out, "round 2: exported") {
		t.Fatalf("final-delta --out %s: code %d\n%s%s", prefix, code, out, errs)
	}
	code, out, errs = runCLI(t, ctx, "db", "import-delta", "--target", e.TargetURL, "--in", prefix, "--endpoint-url", s.Endpoint, "--checkpoint", cp)
	if code != 1 || !strings.Contains(errs, "round 1 missing") {
		t.Fatalf("import-delta of round 2 alone: code %d, want 1 naming round 1\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, ctx, "db", "import-delta", "--target", e.TargetURL, "--in", prefix, "--in", dir, "--endpoint-url", s.Endpoint, "--checkpoint", cp)
	if code != 0 || !strings.Contains(out, "round 1: applied 44 changes") || !strings.Contains(out, "round 2: applied 11 changes") {
		t.Fatalf("import-delta --in both: code %d\n%s%s", code, out, errs)
	}
	if got, want := rowsOf(t, e.TargetURL), rowsOf(t, e.SourceURL); got != want {
		t.Fatalf("target %s\nwant %s", got, want)
	}
}
