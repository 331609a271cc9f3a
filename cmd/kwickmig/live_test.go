package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/faultproxy"
	"github.com/kwick/kwickmig/internal/kmtest"
)

// TestReadWhileSyncRuns starts a real files sync (a process, slowed by 25 ms
// per request through the fault proxy) and, while it holds files.db:
// report shows it running with its progress (exit 0, NO-GO naming it);
// verify files exits 1 with one line naming the sync instead of reporting
// false MISSING; a second sync says who holds the file. Then the sync is
// killed with SIGKILL: its live file stays behind, and report ignores it.
func TestReadWhileSyncRuns(t *testing.T) {
	bin := kwickmigBinary(t)
	e := kmtest.S3(t)
	e.SetAWSEnv(t)
	proxy, err := faultproxy.New(e.Endpoint, faultproxy.Faults{Latency: 25 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	dir := t.TempDir()
	src, state := filepath.Join(dir, "src"), filepath.Join(dir, "state")
	makeTree(t, src, 800)
	dst := "s3://" + e.Bucket + "/r"
	cpPath := filepath.Join(state, "files.db")

	sync := exec.Command(bin, "--state", state, "files", "sync", "--src", src, "--dst", dst, "--endpoint-url", proxy.URL, "--concurrency", "2")
	if err := sync.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sync.Process.Kill(); _ = sync.Wait() }()
	pid := sync.Process.Pid

	var live *checkpoint.Live
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if live, err = checkpoint.ReadLive(cpPath); err == nil && live.Progress != nil && live.Progress.Done > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no live file with progress after 20 s: %v %+v", err, live)
		}
	}
	st, err := os.Stat(checkpoint.LivePath(cpPath))
	if err != nil || st.Mode().Perm() != 0o600 || live.PID != pid || live.Command != "files sync" {
		t.Fatalf("live file: %v %v %+v", err, st, live)
	}

	code, r, text := runReportJSON(t, "--state", state)
	if code != 0 || r.Go || len(r.Running) != 1 || r.Running[0].Command != "files sync" || r.Running[0].PID != pid ||
		r.Running[0].Progress == nil || r.Running[0].Progress.Done == 0 {
		t.Fatalf("report during the sync: code %d %+v\n%s", code, r, text)
	}
	if want := fmt.Sprintf("files sync is running (pid %d", pid); !strings.Contains(strings.Join(r.NoGo, "\n"), want) {
		t.Fatalf("reasons %q lack %q", r.NoGo, want)
	}
	code, out, errOut := runCLI(t, context.Background(), "--state", state, "report", "--offline")
	if code != 0 {
		t.Fatalf("text report: %d\n%s", code, errOut)
	}
	mustContain(t, out, fmt.Sprintf("RUNNING: files sync is running (pid %d", pid))

	code, out, errOut = runCLI(t, context.Background(), "--state", state, "verify", "files", "--src", src, "--dst", dst, "--endpoint-url", e.Endpoint)
	if code != 1 || strings.Contains(out, "missing") || !strings.Contains(errOut, fmt.Sprintf("files sync (pid %d, started", pid)) ||
		!strings.Contains(errOut, "verify files after it stops") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("verify files during the sync: code %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = runCLI(t, context.Background(), "--state", state, "files", "sync", "--src", src, "--dst", dst, "--endpoint-url", e.Endpoint)
	if code != 1 || !strings.Contains(errOut, fmt.Sprintf("in use by files sync (pid %d", pid)) {
		t.Fatalf("second sync: code %d\n%s", code, errOut)
	}

	_ = sync.Process.Kill()
	_ = sync.Wait()
	if _, err := os.Stat(checkpoint.LivePath(cpPath)); err != nil {
		t.Fatalf("kill -9 should leave the live file behind: %v", err)
	}
	code, r, text = runReportJSON(t, "--state", state)
	if code != 0 || len(r.Running) != 0 || strings.Contains(strings.Join(r.NoGo, "\n"), "is running") {
		t.Fatalf("report after kill -9: stale live file not ignored: code %d %+v\n%s", code, r, text)
	}
}
