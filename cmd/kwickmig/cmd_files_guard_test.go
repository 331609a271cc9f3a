package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kwick/kwickmig/internal/kmtest"
)

// mountBind bind-mounts dir at point for the rest of the test (as root; a
// bind mount behaves like an NFS share for identity: its own mount entry,
// source and root). Without the right to mount, the test cannot inject the
// fault: it fails under make test, else skips.
func mountBind(t *testing.T, dir, point string) {
	t.Helper()
	if out, err := exec.Command("mount", "--bind", dir, point).CombinedOutput(); err != nil {
		if os.Getenv("KWICKMIG_TEST_DISALLOW_SKIP") != "" {
			t.Fatalf("mount --bind %s %s: %v: %s", dir, point, err, out)
		}
		t.Skipf("cannot mount (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", point).Run() })
}

func unmount(t *testing.T, point string) {
	t.Helper()
	if out, err := exec.Command("umount", point).CombinedOutput(); err != nil {
		t.Fatalf("umount %s: %v: %s", point, err, out)
	}
}

// An unmounted share looks like an empty directory: it must never make
// --delete wipe the bucket. The same share remounted is accepted; another
// share at the same path is refused; a missing sub-mount is refused.
func TestUnmountedShareDeletesNothing(t *testing.T) {
	se := newSyncEnv(t, "r")
	base := t.TempDir()
	share, other, store := filepath.Join(base, "share"), filepath.Join(base, "other"), filepath.Join(base, "store9")
	for i := range 20 {
		writeFile(t, share, fmt.Sprintf("s1/2026/01/%02d/r%d.json", i%3, i), []byte(fmt.Sprint(i)))
		writeFile(t, other, fmt.Sprintf("s1/2026/01/%02d/r%d.json", i%3, i), []byte(fmt.Sprint(i)))
		writeFile(t, store, fmt.Sprintf("2026/02/r%d.json", i), []byte(fmt.Sprint(i)))
	}
	if err := os.MkdirAll(filepath.Join(share, "s9"), 0o755); err != nil {
		t.Fatal(err)
	}
	mountBind(t, share, se.src)
	mountBind(t, store, filepath.Join(se.src, "s9"))
	if code, rep, out := se.sync("--delete"); code != 0 || rep.FilesUploaded != 40 {
		t.Fatalf("first sync: exit %d, uploaded %d, want 0, 40\n%s", code, rep.FilesUploaded, out)
	}

	// The per-store sub-mount goes away: its directory is empty now.
	unmount(t, filepath.Join(se.src, "s9"))
	for _, extra := range [][]string{{"--delete"}, {"--delete", "--dry-run"}} {
		code, rep, out := se.sync(extra...)
		if code != 1 || rep.FilesDeleted != 0 || rep.FilesMissing != 0 {
			t.Fatalf("sync %v without the sub-mount: exit %d, deleted %d, gone %d; want exit 1, nothing deleted or gone\n%s", extra, code, rep.FilesDeleted, rep.FilesMissing, out)
		}
		mustContain(t, out, "s9 is no longer mounted")
		mustContain(t, out, "nothing was uploaded or deleted")
	}
	if n := bucketCount(t, se.s3); n != 40 {
		t.Fatalf("bucket has %d objects after the refused runs, want 40", n)
	}

	// The whole share goes away: the mount point is an empty directory.
	unmount(t, se.src)
	code, rep, out := se.sync("--delete")
	if code != 1 || rep.FilesDeleted != 0 {
		t.Fatalf("sync of the empty mount point: exit %d, deleted %d; want 1, 0\n%s", code, rep.FilesDeleted, out)
	}
	mustContain(t, out, "not on")
	if n := bucketCount(t, se.s3); n != 40 {
		t.Fatalf("bucket has %d objects after the refused run, want 40", n)
	}

	// verify files refuses the empty mount point too (it would report every
	// file as deleted since the sync and advise another sync).
	if code, _, out := se.verifyFiles(); code != 1 || !strings.Contains(out, "not verifying against it") {
		t.Fatalf("verify files of the empty mount point: exit %d, want 1\n%s", code, out)
	}

	// Another share at the same path: refused too.
	mountBind(t, other, se.src)
	if code, _, out := se.sync("--delete"); code != 1 {
		t.Fatalf("sync of another share: exit %d, want 1\n%s", code, out)
	}
	unmount(t, se.src)

	// The same share and sub-mount again (a remount): accepted, nothing to do.
	mountBind(t, share, se.src)
	mountBind(t, store, filepath.Join(se.src, "s9"))
	code, rep, out = se.sync("--delete")
	if code != 0 || rep.FilesUploaded != 0 || rep.FilesDeleted != 0 || rep.FilesUnchanged != 40 {
		t.Fatalf("sync after remount: exit %d, uploaded %d, deleted %d, unchanged %d; want 0, 0, 0, 40\n%s",
			code, rep.FilesUploaded, rep.FilesDeleted, rep.FilesUnchanged, out)
	}
}

// A plain directory (no mount involved) that is suddenly empty while the
// checkpoint holds records is refused; --accept-source-change goes ahead
// (and --max-delete still guards the deletions).
func TestEmptySourceRootRefused(t *testing.T) {
	se := newSyncEnv(t, "")
	for i := range 5 {
		writeFile(t, se.src, fmt.Sprintf("d/f%d", i), []byte("x"))
	}
	if code, _, out := se.sync("--delete"); code != 0 {
		t.Fatalf("first sync: exit %d\n%s", code, out)
	}
	if err := os.RemoveAll(filepath.Join(se.src, "d")); err != nil {
		t.Fatal(err)
	}
	code, rep, out := se.sync("--delete")
	if code != 1 || rep.FilesDeleted != 0 {
		t.Fatalf("empty root: exit %d, deleted %d; want 1, 0\n%s", code, rep.FilesDeleted, out)
	}
	mustContain(t, out, "the source root is empty")
	if n := bucketCount(t, se.s3); n != 5 {
		t.Fatalf("bucket has %d objects, want 5", n)
	}
	code, rep, out = se.sync("--delete", "--accept-source-change")
	if code != 0 || rep.FilesDeleted != 5 {
		t.Fatalf("--accept-source-change: exit %d, deleted %d; want 0, 5\n%s", code, rep.FilesDeleted, out)
	}
	mustContain(t, out, "has no versioning")
}

// A mass deletion beyond --max-delete deletes nothing and says so; within
// the limit (default or given) it goes ahead.
func TestMaxDelete(t *testing.T) {
	se := newSyncEnv(t, "p")
	const n = 300
	for i := range n {
		writeFile(t, se.src, fmt.Sprintf("s%d/r%03d.json", i%4, i), []byte(fmt.Sprint(i)))
	}
	if code, _, out := se.sync("--delete"); code != 0 {
		t.Fatalf("first sync: exit %d\n%s", code, out)
	}
	// Remove 150 files (half the tree): over the default (100).
	for i := 0; i < 150; i++ {
		if err := os.Remove(filepath.Join(se.src, fmt.Sprintf("s%d/r%03d.json", i%4, i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, extra := range [][]string{{"--delete"}, {"--delete", "--dry-run"}, {"--delete", "--max-delete", "149"}, {"--delete", "--max-delete", "40%"}} {
		code, rep, out := se.sync(extra...)
		if code != 1 || rep.FilesDeleted != 0 {
			t.Fatalf("sync %v: exit %d, deleted %d; want 1, 0\n%s", extra, code, rep.FilesDeleted, out)
		}
		mustContain(t, out, "would remove 150 objects, more than --max-delete")
		mustContain(t, out, "nothing was deleted (first: ")
		if got := bucketCount(t, se.s3); got != n {
			t.Fatalf("sync %v: bucket has %d objects, want %d", extra, got, n)
		}
	}
	// The refusal changed nothing: the records are all still there, and a
	// run allowed to delete them does.
	code, rep, out := se.sync("--delete", "--max-delete", "50%")
	if code != 0 || rep.FilesDeleted != 150 {
		t.Fatalf("--max-delete 50%%: exit %d, deleted %d; want 0, 150\n%s", code, rep.FilesDeleted, out)
	}
	if got := bucketCount(t, se.s3); got != n-150 {
		t.Fatalf("bucket has %d objects, want %d", got, n-150)
	}
	// A handful of deletions is within the default.
	for i := 150; i < 160; i++ {
		_ = os.Remove(filepath.Join(se.src, fmt.Sprintf("s%d/r%03d.json", i%4, i)))
	}
	if code, rep, out := se.sync("--delete"); code != 0 || rep.FilesDeleted != 10 {
		t.Fatalf("10 deletions: exit %d, deleted %d; want 0, 10\n%s", code, rep.FilesDeleted, out)
	}
	// A whole vanished directory counts file by file.
	if err := os.RemoveAll(filepath.Join(se.src, "s1")); err != nil {
		t.Fatal(err)
	}
	code, rep, out = se.sync("--delete", "--max-delete", "10")
	if code != 1 || rep.FilesDeleted != 0 || !strings.Contains(out, "more than --max-delete (10)") {
		t.Fatalf("vanished dir over the limit: exit %d, deleted %d\n%s", code, rep.FilesDeleted, out)
	}
	for _, bad := range []string{"-1", "abc", "101%", "5%%"} {
		code, _, out := se.sync("--delete", "--max-delete", bad)
		if code != 1 || !strings.Contains(out, "--max-delete") {
			t.Fatalf("--max-delete %s: exit %d\n%s", bad, code, out)
		}
	}
}

// A checkpoint that cannot be written (its disk is full) stops the run at
// once with one line naming it, exit 1; the checkpoint stays usable, and the
// next run (after space is freed) finishes the job without losing a file.
func TestCheckpointDiskFullStopsRun(t *testing.T) {
	se := newSyncEnv(t, "full")
	const n = 4000
	for i := range n {
		writeFile(t, se.src, fmt.Sprintf("store-%03d/2026/11/28/receipt-with-a-long-name-%06d.json", i%40, i), []byte(fmt.Sprint(i)))
	}
	small := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", small).CombinedOutput(); err != nil {
		if os.Getenv("KWICKMIG_TEST_DISALLOW_SKIP") != "" {
			t.Fatalf("mount tmpfs: %v: %s", err, out)
		}
		t.Skipf("cannot mount tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", small).Run() })
	se.cp = filepath.Join(small, "kwickmig.db")

	code, rep, out := se.sync()
	if code != 1 {
		t.Fatalf("sync with a full checkpoint disk: exit %d, want 1\n%s", code, out)
	}
	mustContain(t, out, "checkpoint "+se.cp+": cannot record uploads")
	mustContain(t, out, "no space left on device")
	if rep.FilesFailed != 0 {
		t.Fatalf("files_failed %d: nothing failed, the run was stopped", rep.FilesFailed)
	}
	if got := bucketCount(t, se.s3); got >= n {
		t.Fatalf("%d objects uploaded: the run went on after the checkpoint failed", got)
	}
	if out, err := exec.Command("mount", "-o", "remount,size=64m", small).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v: %s", err, out)
	}
	code, rep, out = se.sync()
	if code != 0 || rep.FilesUploaded == 0 || rep.FilesUploaded+rep.FilesUnchanged != n {
		t.Fatalf("rerun: exit %d, uploaded %d, unchanged %d; want 0 and %d in all\n%s", code, rep.FilesUploaded, rep.FilesUnchanged, n, out)
	}
	if got := bucketCount(t, se.s3); got != n {
		t.Fatalf("bucket has %d objects, want %d", got, n)
	}
	if code, rep, out := se.sync(); code != 0 || rep.FilesUploaded != 0 {
		t.Fatalf("third run: exit %d, uploaded %d, want 0, 0\n%s", code, rep.FilesUploaded, out)
	}
}

// bucketCount lists the bucket (no downloads) and returns its object count.
func bucketCount(t testing.TB, e *kmtest.S3Env) int {
	t.Helper()
	n := 0
	p := s3.NewListObjectsV2Paginator(e.Client, &s3.ListObjectsV2Input{Bucket: &e.Bucket})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Contents)
	}
	return n
}

// A typo in a command at 3 a.m. must not look like success; --version says
// which kwickmig this is.
func TestUnknownCommandAndVersion(t *testing.T) {
	for _, args := range [][]string{{"files", "snyc"}, {"verify", "fils"}, {"db", "capture", "instal"}, {"snyc"}} {
		code, out, errOut := runCLI(t, context.Background(), args...)
		if code != 1 || !strings.Contains(errOut, "unknown command") {
			t.Fatalf("%v: exit %d, want 1 and 'unknown command'\n%s%s", args, code, out, errOut)
		}
	}
	_, _, errOut := runCLI(t, context.Background(), "files", "snyc")
	mustContain(t, errOut, "did you mean sync?")
	code, out, _ := runCLI(t, context.Background(), "--version")
	if code != 0 || !strings.HasPrefix(out, "kwickmig ") || !strings.Contains(out, "go1.") {
		t.Fatalf("--version: exit %d, %q", code, out)
	}
}

// s3://b/p and s3://b/p/ are one destination: the same checkpoint serves
// both spellings (and a checkpoint bound to one of them before this rule).
func TestDestinationTrailingSlash(t *testing.T) {
	se := newSyncEnv(t, "p")
	writeFile(t, se.src, "a/b.json", []byte("x"))
	if code, _, out := se.sync(); code != 0 {
		t.Fatalf("first sync: exit %d\n%s", code, out)
	}
	se.dst += "/"
	if code, rep, out := se.sync(); code != 0 || rep.FilesUploaded != 0 || rep.FilesUnchanged != 1 {
		t.Fatalf("sync to %s: exit %d, uploaded %d\n%s", se.dst, code, rep.FilesUploaded, out)
	}
	if code, _, out := se.verifyFiles(); code != 0 {
		t.Fatalf("verify files to %s: exit %d\n%s", se.dst, code, out)
	}
	se.dst = "s3://" + se.s3.Bucket + "/other"
	if code, _, out := se.sync(); code != 1 || !strings.Contains(out, "records files") {
		t.Fatalf("another prefix with the same checkpoint: exit %d, want 1\n%s", code, out)
	}
}

// A per-store mount that comes back empty with the same identity (a fresh
// tmpfs, an NFS export whose disk was not mounted on the server) deletes
// nothing: an empty mount with recorded files is refused like an empty root.
func TestEmptySubMountRefused(t *testing.T) {
	se := newSyncEnv(t, "")
	writeFile(t, se.src, "s1/a.json", []byte("a"))
	store := filepath.Join(se.src, "s4")
	if err := os.MkdirAll(store, 0o755); err != nil {
		t.Fatal(err)
	}
	mountTmpfs := func() {
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", store).CombinedOutput(); err != nil {
			if os.Getenv("KWICKMIG_TEST_DISALLOW_SKIP") != "" {
				t.Fatalf("mount tmpfs: %v: %s", err, out)
			}
			t.Skipf("cannot mount tmpfs (needs root): %v", err)
		}
	}
	mountTmpfs()
	t.Cleanup(func() { _ = exec.Command("umount", "-l", store).Run() })
	for i := range 30 {
		writeFile(t, store, fmt.Sprintf("2026/r%02d.json", i), []byte("x"))
	}
	if code, rep, out := se.sync("--delete"); code != 0 || rep.FilesUploaded != 31 {
		t.Fatalf("first sync: exit %d, uploaded %d\n%s", code, rep.FilesUploaded, out)
	}
	unmount(t, store)
	mountTmpfs() // same type, source and root: the same identity, but empty
	code, rep, out := se.sync("--delete")
	if code != 1 || rep.FilesDeleted != 0 {
		t.Fatalf("empty sub-mount: exit %d, deleted %d; want 1, 0\n%s", code, rep.FilesDeleted, out)
	}
	mustContain(t, out, "the mount s4 is empty")
	if n := bucketCount(t, se.s3); n != 31 {
		t.Fatalf("bucket has %d objects, want 31", n)
	}
}
