package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/kmtest"
)

// verdictOf runs report --json (and the text form) on the checkpoint.
func verdictOf(t *testing.T, ck string, extra ...string) (bool, []string) {
	t.Helper()
	args := append([]string{"report", "--checkpoint", ck, "--json"}, extra...)
	code, out, errs := runCLI(t, context.Background(), args...)
	var rep struct {
		Go      *bool     `json:"go"`
		Reasons *[]string `json:"no_go_reasons"`
		Files   struct {
			Synced *int `json:"files_synced"`
		} `json:"files"`
		DB struct {
			Complete *bool `json:"data_complete"`
		} `json:"db"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || rep.Go == nil || rep.Reasons == nil || rep.Files.Synced == nil || rep.DB.Complete == nil {
		t.Fatalf("report --json: code %d %v\n%s%s", code, err, out, errs)
	}
	code, text, _ := runCLI(t, context.Background(), append([]string{"report", "--checkpoint", ck}, extra...)...)
	first := strings.SplitN(strings.TrimSpace(strings.SplitN(text, "VERDICT:", 2)[1]), "\n", 2)[0]
	if code != 0 || *rep.Go != strings.HasPrefix(first, "GO") {
		t.Fatalf("text verdict %q, json go %v", first, *rep.Go)
	}
	for _, r := range *rep.Reasons {
		mustContain(t, text, r)
	}
	return *rep.Go, *rep.Reasons
}

func wantGo(t *testing.T, ck string, extra ...string) {
	t.Helper()
	if ok, reasons := verdictOf(t, ck, extra...); !ok || len(reasons) != 0 {
		t.Fatalf("verdict: go %v, reasons %q; want GO", ok, reasons)
	}
}

func wantNoGo(t *testing.T, ck, reason string, extra ...string) {
	t.Helper()
	ok, reasons := verdictOf(t, ck, extra...)
	for _, r := range reasons {
		if strings.Contains(r, reason) {
			if ok {
				t.Fatalf("go with reasons %q", reasons)
			}
			return
		}
	}
	t.Fatalf("verdict: go %v, reasons %q; want NO-GO with %q", ok, reasons, reason)
}

// TestReportVerdict builds one checkpoint through the real commands (files
// sync, verify files, db final-delta, verify db) and checks GO after each
// side is verified, and each NO-GO reason after a late change: a sync after
// the last verify files, a file changed since the sync, a delta round after
// the last verify db, a live capture backlog and a failed command.
func TestReportVerdict(t *testing.T) {
	se := newSyncEnv(t, "receipts")
	ck := se.cp
	writeFile(t, se.src, "2026/a.json", []byte(`{"total": 1}`))
	writeFile(t, se.src, "2026/b.json", []byte(`{"total": 2}`))

	empty := filepath.Join(t.TempDir(), "empty.db")
	cp, err := checkpoint.Open(empty)
	if err != nil {
		t.Fatal(err)
	}
	cp.Close()
	wantNoGo(t, empty, "nothing recorded")
	if code, _, out := se.sync(); code != 0 {
		t.Fatalf("sync: %d\n%s", code, out)
	}
	wantNoGo(t, ck, "files: verify files has not run")
	if code, _, out := se.verifyFiles(); code != 0 {
		t.Fatalf("verify files: %d\n%s", code, out)
	}
	wantGo(t, ck)

	// a late change, synced after the verification
	writeFile(t, se.src, "2026/c.json", []byte(`{"total": 3}`))
	if code, _, out := se.sync(); code != 0 {
		t.Fatalf("sync: %d\n%s", code, out)
	}
	wantNoGo(t, ck, "run verify files again")
	// a change the last sync did not see: verify files finds it
	time.Sleep(10 * time.Millisecond)
	writeFile(t, se.src, "2026/a.json", []byte(`{"total": 100}`))
	if code, _, out := se.verifyFiles(); code != 2 {
		t.Fatalf("verify files after a change: %d, want 2\n%s", code, out)
	}
	wantNoGo(t, ck, "files: the last verify files")
	se.sync()
	if code, _, out := se.verifyFiles(); code != 0 {
		t.Fatalf("verify files: %d\n%s", code, out)
	}
	wantGo(t, ck)

	// the database side, in the same checkpoint
	e := deltaPair(t)
	ctx := context.Background()
	db := func(want int, args ...string) {
		t.Helper()
		if code, out, errs := runCLI(t, ctx, append(args, "--checkpoint", ck)...); code != want {
			t.Fatalf("%v: exit %d, want %d\n%s%s", args, code, want, out, errs)
		}
	}
	db(0, "db", "final-delta", "--source", e.SourceURL, "--target", e.TargetURL)
	wantNoGo(t, ck, "database: verify db has not run")
	db(0, "verify", "db", "--source", e.SourceURL, "--target", e.TargetURL)
	wantGo(t, ck)
	wantGo(t, ck, "--source", e.SourceURL) // backlog read live: empty

	// writes on the source after the final delta: the live backlog says so
	kmtest.Exec(t, e.SourceURL, `INSERT INTO stores VALUES ('S9', 'Late')`)
	wantNoGo(t, ck, "capture backlog: 1 rows not yet applied", "--source", e.SourceURL)
	db(0, "db", "final-delta", "--source", e.SourceURL, "--target", e.TargetURL)
	wantNoGo(t, ck, "database changed by db final-delta at")
	db(0, "verify", "db", "--source", e.SourceURL, "--target", e.TargetURL)
	wantGo(t, ck, "--source", e.SourceURL)

	// a failed command stays open until it succeeds
	dead := "postgres://kwick@" + closedPort(t) + "/shop?connect_timeout=3"
	db(1, "db", "final-delta", "--source", e.SourceURL, "--target", dead)
	wantNoGo(t, ck, "open failure: db final-delta exited 1")
	_ = os.Remove(se.rep)
}
