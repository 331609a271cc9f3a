package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/kwick/kwickmig/internal/checkpoint"
)

// The second files sync knows the total from the first one's run record:
// its progress log shows "scanned N/M" (the first has no total to show),
// and verify files takes the same total. Progress lines are logged on
// every update here (stderr is not a terminal).
func TestProgressShowsPreviousTotal(t *testing.T) {
	progressLogEvery = 1
	t.Cleanup(func() { progressLogEvery = 0 })
	se := newSyncEnv(t, "p")
	for i := range 40 {
		writeFile(t, se.src, fmt.Sprintf("d%d/r%02d.json", i%4, i), []byte(fmt.Sprint(i)))
	}
	code, _, out := se.sync()
	if code != 0 || !strings.Contains(out, "msg=\"files sync\" scanned=40") || strings.Contains(out, "total=") {
		t.Fatalf("first sync: exit %d, want a progress line with scanned=40 and no total\n%s", code, out)
	}
	writeFile(t, se.src, "d9/new.json", []byte("new"))
	code, _, out = se.sync()
	if code != 0 || !strings.Contains(out, "scanned=41 uploaded=1") || !strings.Contains(out, "total=40 progress=41/40") {
		t.Fatalf("second sync: exit %d, want the last progress line to show 41/40\n%s", code, out)
	}
	code, _, out = se.sync()
	if code != 0 || !strings.Contains(out, "total=41 progress=41/41") {
		t.Fatalf("third sync: exit %d, want 41/41\n%s", code, out)
	}
	// verify files logs progress once a second only (this one is faster):
	// its total comes from the same records, the latest run first.
	writeFile(t, se.src, "d9/late.json", []byte("late"))
	code, stdout, errs := runCLI(t, context.Background(), "verify", "files", "--src", se.src, "--dst", se.dst,
		"--endpoint-url", se.s3.Endpoint, "--checkpoint", se.cp)
	if code != 2 {
		t.Fatalf("verify files: exit %d, want 2 (one file not yet synced)\n%s%s", code, stdout, errs)
	}
	cp, err := checkpoint.OpenReadOnly(se.cp)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	if n := previousCount(cp, verifyFilesTotal); n != 42 {
		t.Errorf("verify files total %d, want 42 (files_checked of the last verify files)", n)
	}
	if n := previousCount(cp, filesSyncTotal); n != 41 {
		t.Errorf("files sync total %d, want 41 (the last sync's files_scanned)", n)
	}
}
