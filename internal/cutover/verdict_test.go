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
