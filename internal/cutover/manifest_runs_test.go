package cutover

import (
	"strings"
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/checkpoint"
)

// A verify db --out (manifest write) that exited 0 verifies nothing: only
// a later verify db --in (manifest compare) makes the database side GO.
func TestManifestWriteIsNoVerification(t *testing.T) {
	at := time.Date(2026, 11, 29, 1, 0, 0, 0, time.UTC)
	run := func(min int, command string, summary map[string]any) checkpoint.RunRecord {
		return checkpoint.RunRecord{Command: command, Started: at.Add(time.Duration(min) * time.Minute),
			Finished: at.Add(time.Duration(min+1) * time.Minute), Summary: summary}
	}
	in := &Input{Checkpoints: []string{"db.db"}, Runs: []checkpoint.RunRecord{
		run(0, "db copy", map[string]any{"tables": 3}),
		run(5, "verify db", map[string]any{"mode": "manifest write", "location": "s3://b/m", "tables_written": 3, "rows_source": 10}),
	}}
	r := FromInput(in, nil, nil)
	if r.Go || !strings.Contains(strings.Join(r.NoGoReasons, "\n"), "verify db has not run") {
		t.Fatalf("after a manifest write: go %v, reasons %q", r.Go, r.NoGoReasons)
	}
	if len(r.Verifications) != 0 {
		t.Fatalf("a manifest write listed as a verification: %+v", r.Verifications)
	}
	if h := r.Runs[len(r.Runs)-1].Headline; !strings.Contains(h, "manifest written to s3://b/m: 3 tables, 10 rows") {
		t.Fatalf("headline %q", h)
	}
	in.Runs = append(in.Runs, run(10, "verify db", map[string]any{"mode": "manifest compare", "tables_checked": 3}))
	if r := FromInput(in, nil, nil); !r.Go || len(r.Verifications) != 1 || r.Verifications[0].Summary["mode"] != "manifest compare" {
		t.Fatalf("after a clean compare: go %v, reasons %q, verifications %+v", r.Go, r.NoGoReasons, r.Verifications)
	}
	// A manifest written after the compare does not replace it.
	in.Runs = append(in.Runs, run(20, "verify db", map[string]any{"mode": "manifest write"}))
	if r := FromInput(in, nil, nil); !r.Go {
		t.Fatalf("a later manifest write undid the compare: %q", r.NoGoReasons)
	}
}
