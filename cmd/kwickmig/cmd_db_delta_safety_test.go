package main

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/kmtest"
)

// TestDBFinalDeltaSafetyCLI: a row deleted directly on the target and then
// updated on the source makes final-delta exit 1 naming the table and key,
// with nothing of the round applied; a lock held on the target by an idle
// session makes it exit 1 after --lock-timeout naming the session's pid.
func TestDBFinalDeltaSafetyCLI(t *testing.T) {
	e := deltaPair(t)
	ctx := context.Background()
	cp := filepath.Join(t.TempDir(), "kwickmig.db")
	delta := func(extra ...string) (int, string) {
		args := append([]string{"db", "final-delta", "--source", e.SourceURL, "--target", e.TargetURL, "--checkpoint", cp}, extra...)
		code, out, errs := runCLI(t, ctx, args...)
		return code, out + errs
	}
	if code, out := delta(); code != 0 {
		t.Fatalf("first round: exit %d\n%s", code, out)
	}

	kmtest.Exec(t, e.TargetURL, `DELETE FROM stores WHERE code = 'S1'`)
	kmtest.Exec(t, e.SourceURL, `UPDATE stores SET name = 'Central Station' WHERE code = 'S1'`,
		`INSERT INTO "Order Lines" VALUES (100, 'same round', 1)`)
	code, out := delta()
	if code != ExitCannotRun || !strings.Contains(out, "update public.stores") || !strings.Contains(out, "(code)=(S1)") {
		t.Fatalf("exit %d, want 1 naming public.stores (code)=(S1):\n%s", code, out)
	}
	tgt, err := pgx.Connect(ctx, e.TargetURL)
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close(ctx)
	var n int
	if err := tgt.QueryRow(ctx, `SELECT count(*) FROM "Order Lines" WHERE id = 100`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("part of the failed round was applied (%d rows, %v)", n, err)
	}
	kmtest.Exec(t, e.TargetURL, `INSERT INTO stores VALUES ('S1', 'Central')`)

	holder, err := pgx.Connect(ctx, e.TargetURL)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	if _, err := holder.Exec(ctx, `BEGIN; LOCK TABLE stores IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, out = delta("--lock-timeout", "1s")
	took := time.Since(start)
	pid := strconv.Itoa(int(holder.PgConn().PID()))
	if code != ExitCannotRun || !strings.Contains(out, "lock held by pid "+pid) || !strings.Contains(out, "--lock-timeout") {
		t.Fatalf("exit %d after %s, want 1 naming pid %s:\n%s", code, took, pid, out)
	}
	if took > 6*time.Second {
		t.Fatalf("took %s with --lock-timeout 1s", took)
	}
	if _, err := holder.Exec(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	if code, out := delta("--lock-timeout", "1s"); code != 0 {
		t.Fatalf("after the lock is released: exit %d\n%s", code, out)
	}
	if got, want := rowsOf(t, e.TargetURL), rowsOf(t, e.SourceURL); got != want {
		t.Fatalf("target %s\nwant %s", got, want)
	}
}
