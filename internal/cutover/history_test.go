package cutover

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/checkpoint"
)

// 300 syncs: the history lists the last 50 and sums up the other 250 by
// exit code; a copy that failed after a good one is listed apart and does
// not replace it as the copy state.
func TestHistorySummarisedAndLastGoodCopy(t *testing.T) {
	cp, err := checkpoint.Open(filepath.Join(t.TempDir(), "kwickmig.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	t0 := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	add := func(rec checkpoint.RunRecord) {
		if err := cp.AppendRun(rec); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 300 {
		code := 0
		if i == 10 || i == 20 {
			code = 2
		}
		at := t0.Add(time.Duration(i) * time.Minute)
		add(checkpoint.RunRecord{Command: "files sync", Started: at, Finished: at.Add(time.Second), ExitCode: code,
			Summary: map[string]any{"files_uploaded": 1}})
	}
	add(checkpoint.RunRecord{Command: "db copy", Started: t0, Finished: t0.Add(time.Hour), Summary: map[string]any{"tables": 3, "rows": 100}})
	add(checkpoint.RunRecord{Command: "db copy", Started: t0.Add(2 * time.Hour), Finished: t0.Add(2 * time.Hour), ExitCode: 1,
		Error: "target: cannot connect to aurora:5432"})
	r, err := Build(cp, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Files.Syncs != 300 || len(r.Throughput) != 300 {
		t.Fatalf("syncs %d, throughput %d: the totals must still count every run", r.Files.Syncs, len(r.Throughput))
	}
	if len(r.Runs) != 52 || len(r.EarlierRuns) != 1 {
		t.Fatalf("runs %d, earlier %+v: want 50 syncs + 2 copies listed", len(r.Runs), r.EarlierRuns)
	}
	if want := "… and 250 earlier files sync runs: 248 exit 0, 2 exit 2"; r.EarlierRuns[0].Line != want {
		t.Fatalf("earlier runs %q, want %q", r.EarlierRuns[0].Line, want)
	}
	if r.DB.LastCopy == nil || r.DB.LastCopy.ExitCode != 0 || len(r.DB.FailedCopies) != 1 ||
		r.DB.FailedCopies[0].Error != "target: cannot connect to aurora:5432" {
		t.Fatalf("last copy %+v, failed %+v", r.DB.LastCopy, r.DB.FailedCopies)
	}
	var text, page bytes.Buffer
	r.WriteText(&text)
	if err := r.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{text.String(), page.String()} {
		for _, want := range []string{"250 earlier files sync runs", "target: cannot connect to aurora:5432", "3 tables, 100 rows"} {
			if !strings.Contains(out, want) {
				t.Errorf("report lacks %q", want)
			}
		}
	}
	if n := strings.Count(page.String(), "<tr><td>"); n > 60 {
		t.Errorf("page has %d history rows", n)
	}
}
