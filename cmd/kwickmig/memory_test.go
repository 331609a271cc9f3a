package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/kmtest"
	ksync "github.com/kwick/kwickmig/internal/sync"
)

// TestFilesSyncLargeFilesMemory is the case: 12 files of 80 MiB
// with default settings (they are multipart uploads: above the 64 MiB
// threshold) must peak under --max-memory + 150 MB of RSS; before multipart
// uploads streamed from disk the process peaked at 2.1–2.6 GB. The files
// are sparse (80 MiB each read as zeros but a few marked bytes) so the
// test spends its time uploading, not writing them. Then verify files
// --checksum must find the multipart objects identical (their stored
// checksum is the whole file's CRC32C) and exit 0. About 10 s on 2 cores.
func TestFilesSyncLargeFilesMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads 960 MiB (about 10 s)")
	}
	bin := kwickmigBinary(t)
	e := kmtest.S3(t)
	e.SetAWSEnv(t)
	dir := t.TempDir()
	src, cp := filepath.Join(dir, "src"), filepath.Join(dir, "cp.db")
	must(t, os.MkdirAll(src, 0o755))
	for i := range 12 {
		f, err := os.Create(filepath.Join(src, "big"+string(rune('a'+i))+".bin"))
		must(t, err)
		must(t, f.Truncate(80<<20))
		for _, off := range []int64{0, 17 << 20, 80<<20 - 1} {
			_, err := f.WriteAt([]byte{byte(i + 1)}, off)
			must(t, err)
		}
		must(t, f.Close())
	}
	start := time.Now()
	cmd := exec.Command(bin, "files", "sync", "--src", src, "--dst", "s3://"+e.Bucket, "--endpoint-url", e.Endpoint, "--checkpoint", cp)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("files sync: %v\n%s", err, out)
	}
	peak := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10 // KiB on Linux
	limit := int64(ksync.DefaultMaxMemory + 150e6)
	t.Logf("peak RSS %d MB (limit %d MB), %.1fs", peak/1e6, limit/1e6, time.Since(start).Seconds())
	start = time.Now()
	if peak > limit {
		t.Fatalf("files sync of 12 files of 80 MiB peaked at %d MB of RSS, want under %d MB", peak/1e6, limit/1e6)
	}
	out, err = exec.Command(bin, "verify", "files", "--src", src, "--dst", "s3://"+e.Bucket, "--endpoint-url", e.Endpoint,
		"--checkpoint", cp, "--checksum").CombinedOutput()
	if err != nil {
		t.Fatalf("verify files --checksum after the sync: %v\n%s", err, out)
	}
	t.Logf("verify %.1fs", time.Since(start).Seconds())
	mustContain(t, string(out), "crc32c 12")
}
