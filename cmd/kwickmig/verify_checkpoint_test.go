package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/faultproxy"
)

// TestVerifyFilesCheckpointInUse: verify files while a real files sync
// holds the checkpoint stops at once with one line saying a sync is
// running on it (exit 1, no MISSING: it used to carry on without the
// checkpoint and report every file not yet uploaded as missing, exit 2).
// --no-checkpoint verifies without it on purpose; a --checkpoint that was
// given but does not exist is refused.
func TestVerifyFilesCheckpointInUse(t *testing.T) {
	bin := kwickmigBinary(t)
	se := newSyncEnv(t, "inuse")
	makeTree(t, se.src, 1500)
	// Latency keeps the sync running (and the lock held) for seconds.
	proxy, err := faultproxy.New(se.s3.Endpoint, faultproxy.Faults{Latency: 20 * time.Millisecond})
	must(t, err)
	defer proxy.Close()
	sync := exec.Command(bin, "files", "sync", "--src", se.src, "--dst", se.dst, "--endpoint-url", proxy.URL,
		"--checkpoint", se.cp, "--concurrency", "4")
	must(t, sync.Start())
	defer func() { _ = sync.Process.Kill(); _ = sync.Wait() }()
	waitLocked(t, se.cp)

	verify := func(extra ...string) (int, string, string) {
		args := append([]string{"verify", "files", "--src", se.src, "--dst", se.dst, "--endpoint-url", se.s3.Endpoint}, extra...)
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		_ = cmd.Run()
		return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
	}
	code, stdout, stderr := verify("--checkpoint", se.cp)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code != 1 || len(lines) != 1 || !strings.Contains(lines[0], se.cp) || !strings.Contains(lines[0], "files sync (pid ") || !strings.Contains(lines[0], "is running on checkpoint") ||
		strings.Contains(stdout+stderr, "MISSING") {
		t.Fatalf("verify during a sync: exit %d, want 1 and one line naming the running sync\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if sync.ProcessState != nil {
		t.Fatal("the sync ended before verify ran: the test proved nothing")
	}

	// On purpose without it: it runs, and lists what the sync has not done yet.
	code, stdout, stderr = verify("--no-checkpoint")
	if code != 2 || !strings.Contains(stdout, "MISSING") {
		t.Fatalf("verify --no-checkpoint during a sync: exit %d, want 2 with MISSING files\n%s%s", code, stdout, stderr)
	}

	// A checkpoint that was given must exist.
	absent := filepath.Join(t.TempDir(), "nope.db")
	code, _, stderr = verify("--checkpoint", absent)
	if code != 1 || !strings.Contains(stderr, absent) || !strings.Contains(stderr, "does not exist") {
		t.Fatalf("verify with a missing --checkpoint: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(absent); err == nil {
		t.Fatal("verify created the checkpoint")
	}
}

// waitLocked waits until another process holds path's bbolt lock.
func waitLocked(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if f, err := os.Open(path); err == nil {
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
			f.Close() // also drops a lock taken by this probe
			if err == syscall.EWOULDBLOCK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no process took the lock on %s", path)
}
