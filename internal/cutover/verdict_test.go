package cutover

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// The fixture's migration is not ready: its last verify files found a
// changed file and its verify refs could not run; a live backlog adds a
// reason. Each shows in the JSON fields, the text and the page.
func TestVerdictReasons(t *testing.T) {
	r, err := Build(fixture(t), &Backlog{Rows: 7, Live: true, AsOf: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if r.Go || len(r.NoGoReasons) != 3 {
		t.Fatalf("go %v, reasons %q: want 3", r.Go, r.NoGoReasons)
	}
	for i, want := range []string{"files: the last verify files (2026-11-20 16:00:03Z) differences found",
		"open failure: verify refs exited 1", "capture backlog: 7 rows not yet applied"} {
		if !strings.Contains(r.NoGoReasons[i], want) {
			t.Errorf("reason %d %q, want %q", i, r.NoGoReasons[i], want)
		}
	}
	var text, page bytes.Buffer
	r.WriteText(&text)
	if err := r.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "VERDICT: NO-GO: 3 reason(s)\n  - files: the last verify files") {
		t.Errorf("text does not open with the verdict:\n%s", text.String())
	}
	if !strings.Contains(page.String(), `class="verdict nogo"`) || !strings.Contains(page.String(), "open failure: verify refs exited 1") {
		t.Errorf("page lacks the verdict")
	}
}

// A failed verify's reason is its error as the report should show it: no
// repeated command name, no "(listed above)" from the terminal.
func TestRunDetail(t *testing.T) {
	for _, c := range []struct {
		run  Run
		want string
	}{
		{Run{Command: "verify files", Error: "verify files: 1 file changed since the last sync (run files sync again) (listed above)", Headline: "error: …"},
			"1 file changed since the last sync (run files sync again)"},
		{Run{Command: "verify db", Error: "target: cannot connect to x (no answer within 10s)"}, "target: cannot connect to x (no answer within 10s)"},
		{Run{Command: "verify db", Headline: "4 tables (1 differ)"}, "4 tables (1 differ)"},
	} {
		if got := runDetail(c.run); got != c.want {
			t.Errorf("runDetail(%+v) = %q, want %q", c.run, got, c.want)
		}
	}
}
