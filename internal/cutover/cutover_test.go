package cutover

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/checkpoint"
)

// fixture writes a checkpoint with the records a whole migration leaves.
func fixture(t *testing.T) *checkpoint.DB {
	t.Helper()
	cp, err := checkpoint.Open(filepath.Join(t.TempDir(), "kwickmig.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.Close() })
	t0 := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	add := func(cmd string, at time.Duration, secs float64, code int, s map[string]any) {
		start := t0.Add(at)
		if err := cp.AppendRun(checkpoint.RunRecord{Command: cmd, Started: start,
			Finished: start.Add(time.Duration(secs * float64(time.Second))), ExitCode: code, Summary: s}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cp.Bind("files", "/mnt/receipts -> s3://kwick-receipts/receipts"); err != nil {
		t.Fatal(err)
	}
	rec := checkpoint.FileRecord{Size: 10, MtimeNs: 1}
	if err := cp.ApplyFileOps([]checkpoint.FileOp{{Rel: "a/1.json", Rec: &rec}, {Rel: "a/2.json", Rec: &rec}, {Rel: "b.json", Rec: &rec}}); err != nil {
		t.Fatal(err)
	}
	add("files sync", 0, 100, 0, map[string]any{"files_scanned": 3000, "files_uploaded": 3000, "bytes_uploaded": 12e6, "duration_seconds": 100.0, "files_failed": 0})
	add("files sync", time.Hour, 2, 2, map[string]any{"files_scanned": 3010, "files_uploaded": 10, "bytes_uploaded": 40e3, "duration_seconds": 2.0, "files_failed": 1})
	add("db capture install", 2*time.Hour, 1, 0, map[string]any{"tables": []any{"public.receipts"}})
	add("db copy", 3*time.Hour, 5, 1, map[string]any{"error": "target: cannot connect"})
	add("db copy", 4*time.Hour, 60, 0, map[string]any{"tables": 2, "rows": 1500, "bytes": 3e6, "sequences": 2})
	add("db capture status", 5*time.Hour, 1, 0, map[string]any{"installed": true, "backlog_rows": 42, "backlog_bytes": 4096, "oldest_age": "3m0s"})
	add("db final-delta", 6*time.Hour, 3, 0, map[string]any{"rows": 42, "sequences": 2,
		"rounds": []any{map[string]any{"round": 1, "rows": 40}, map[string]any{"round": 2, "rows": 2}}})
	add("files sync", 7*time.Hour, 4, 0, map[string]any{"files_scanned": 3020, "files_uploaded": 20, "bytes_uploaded": 80e3, "duration_seconds": 4.0, "files_failed": 0})
	add("verify files", 8*time.Hour, 3, 2, map[string]any{"mode": "size", "files_checked": 3020, "mismatches": 0, "changed_since_sync": 2})
	add("verify db", 8*time.Hour, 9, 0, map[string]any{"tables_checked": 2, "rows_source": 1500, "rows_target": 1500})
	add("verify refs", 8*time.Hour, 1, 1, map[string]any{"error": "source: query: ERROR: relation \"receipt\" does not exist"})
	for key, v := range map[string]any{
		`plan/"public"."receipts"`:         []any{map[string]any{"lo": 0}, map[string]any{"lo": 10}},
		`part/"public"."receipts"#0`:       map[string]any{"done": true, "rows": 1000, "bytes": 2e6, "seconds": 20},
		`part/"public"."receipts"#1`:       map[string]any{"done": true, "rows": 400, "bytes": 7e5, "seconds": 10},
		`part/"public"."<b>Order Lines"#0`: map[string]any{"done": false, "rows": 100, "bytes": 1e5},
		"state":                            map[string]any{"data_done": true},
	} {
		if err := cp.PutJSON("dbcopy", key, v); err != nil {
			t.Fatal(err)
		}
	}
	return cp
}

func TestBuild(t *testing.T) {
	r, err := Build(fixture(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Files.Recorded != 3 || r.Files.Syncs != 3 || r.Files.Uploaded != 3030 || r.Files.Pending != 2 || len(r.Throughput) != 3 {
		t.Fatalf("files %+v, throughput %d", r.Files, len(r.Throughput))
	}
	if got := r.Throughput[0].FilesPerSec; got != 30 {
		t.Errorf("files/s %v, want 30", got)
	}
	if r.Delta.Rounds != 2 || r.Delta.RowsApplied != 42 || r.Delta.Backlog == nil || r.Delta.Backlog.Rows != 42 {
		t.Fatalf("delta %+v", r.Delta)
	}
	if len(r.DB.Tables) != 2 || !r.DB.Complete || r.DB.Tables[1].Table != "public.receipts" || r.DB.Tables[1].Parts != 2 ||
		r.DB.Tables[1].PartsDone != 2 || r.DB.Tables[1].Rows != 1400 || r.DB.Tables[0].PartsDone != 0 {
		t.Fatalf("tables %+v", r.DB.Tables)
	}
	var outcomes []string
	for _, v := range r.Verifications {
		outcomes = append(outcomes, v.Command+"="+v.Outcome)
	}
	if got := strings.Join(outcomes, ","); got != "verify db=all match,verify files=differences found,verify refs=could not run" {
		t.Fatalf("verifications %s", got)
	}
	// The failed db copy was followed by a good one: closed. The failed
	// second sync was followed by a good third: closed.
	var failed []string
	for _, f := range r.OpenFailures {
		failed = append(failed, f.Command)
	}
	if got := strings.Join(failed, ","); got != "verify files,verify refs" {
		t.Fatalf("open failures %s", got)
	}

	var text bytes.Buffer
	r.WriteText(&text)
	for _, want := range []string{"files synced  ", "files pending  ", "2 (0 failed in the last sync; 2 changed", "delta rounds applied  2 (42 rows)", "0/1",
		"verify files  differences found", "public.receipts", "relation \"receipt\" does not exist"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}

	var page bytes.Buffer
	if err := r.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	h := page.String()
	for _, bad := range []string{"<script", "src=", "href=", "url(", "<b>Order"} {
		if strings.Contains(h, bad) {
			t.Errorf("HTML contains %q (must be self-contained and escaped)", bad)
		}
	}
	for _, want := range []string{"<svg", "<rect", "&lt;b&gt;Order Lines", "differences found", "files sync throughput"} {
		if !strings.Contains(h, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
}

func TestBuildEmpty(t *testing.T) {
	cp, err := checkpoint.Open(filepath.Join(t.TempDir(), "kwickmig.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	r, err := Build(cp, nil)
	if err != nil {
		t.Fatal(err)
	}
	var text, page bytes.Buffer
	r.WriteText(&text)
	if err := r.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "no verify command has run") || !strings.Contains(page.String(), "No files sync run recorded") {
		t.Fatalf("empty report:\n%s", text.String())
	}
}
