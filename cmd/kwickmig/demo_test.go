package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/kmtest"
)

// TestDemoRunbook runs scripts/demo.sh (the README's runbook, with the sync
// loop running in the background while the database commands run) on 300
// receipts against the harness's servers, and checks what an operator
// would: the cutover report says GO; after one late receipt, verify files
// finds it and the report says NO-GO, naming verify files' differences and
// the capture backlog.
func TestDemoRunbook(t *testing.T) {
	bin := kwickmigBinary(t)
	for _, v := range []string{"KWICKMIG_TEST_S3_ENDPOINT", "KWICKMIG_TEST_PG_SOURCE", "KWICKMIG_TEST_PG_TARGET"} {
		kmtest.Env(t, v)
	}
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join("..", "..", "scripts", "demo.sh"))
	cmd.Env = append(os.Environ(), "KWICKMIG_BIN="+bin, "DEMO_DIR="+work, "DEMO_RECEIPTS=300", "DEMO_LATE=30", "DEMO_SYNC_PAUSE=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("demo: %.1fs", time.Since(start).Seconds())
	if err != nil {
		t.Fatalf("demo.sh: %v\n%s", err, out.String())
	}
	text := out.String()
	if strings.Contains(text, "--checkpoint") {
		t.Fatalf("the runbook uses no --checkpoint flags:\n%s", text)
	}
	goAt := strings.Index(text, "VERDICT: GO")
	noGoAt := strings.LastIndex(text, "VERDICT: NO-GO")
	if goAt < 0 || noGoAt < goAt {
		t.Fatalf("want a GO report, then a NO-GO one after the late change:\n%s", text)
	}
	after := text[noGoAt:]
	if !regexp.MustCompile(`files: the last verify files \(.*\) differences found`).MatchString(after) ||
		!strings.Contains(after, "capture backlog:") {
		t.Fatalf("NO-GO without the late change's reasons:\n%s", after)
	}
	if _, err := os.Stat(filepath.Join(work, "kwickmig-state", "files.db")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(work, "kwickmig-state", "db.db")); err != nil {
		t.Fatal(err)
	}
}
