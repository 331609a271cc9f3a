package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kwick/kwickmig/internal/source"
)

// TestFilesSyncHostileNames uploads names S3 tools trip over and checks each
// object's key and bytes, and that an over-long key is reported, not cut.
func TestFilesSyncHostileNames(t *testing.T) {
	se := newSyncEnv(t, "p")
	names := []string{
		"with space.json", "50%off.json", "a+b.json", "hash#tag.json", "what?.json",
		`back\slash.json`, "new\nline.json", "-leading-dash.json", "--double.json",
		"caf\u00e9.json",  // NFC
		"cafe\u0301.json", // NFD: a different file, a different key
		"bad\xffutf8.json", "%!fake-escape.json", "日本/領収書.json", "tab\there.json",
		"dir with space/x.json",
	}
	for i, n := range names {
		writeFile(t, se.src, n, []byte(strings.Repeat("x", i+1)))
	}
	long := strings.Repeat("d", 250) + "/" + strings.Repeat("e", 250) + "/" + strings.Repeat("f", 250) + "/" + strings.Repeat("g", 250) + "/" + strings.Repeat("h", 250) + "/long.json"
	writeFile(t, se.src, long, []byte("long"))

	code, rep, out := se.sync()
	if code != 2 {
		t.Fatalf("exit %d, want 2 (one file failed)\n%s", code, out)
	}
	if rep.FilesUploaded != int64(len(names)) || rep.FilesFailed != 1 {
		t.Fatalf("uploaded %d failed %d, want %d 1\n%s", rep.FilesUploaded, rep.FilesFailed, len(names), out)
	}
	if rep.Failures[0].Path != long || !strings.Contains(rep.Failures[0].Reason, "1024") {
		t.Fatalf("failure %+v, want the long path with a 1024-byte reason", rep.Failures[0])
	}
	got := bucketObjects(t, se.s3)
	if len(got) != len(names) {
		t.Fatalf("bucket has %d objects, want %d: %q", len(got), len(names), keys(got))
	}
	for i, n := range names {
		key, err := source.ObjectKey("p/", n)
		if err != nil {
			t.Fatal(err)
		}
		if b := got[key]; !bytes.Equal(b, []byte(strings.Repeat("x", i+1))) {
			t.Errorf("name %q: key %q has %q", n, key, b)
		}
	}
	if _, ok := got["p/%!bad%FFutf8.json"]; !ok {
		t.Errorf("invalid UTF-8 name not stored under its documented escaped key; keys %q", keys(got))
	}
	// The rerun is clean except for the same over-long name.
	code, rep, _ = se.sync()
	if code != 2 || rep.FilesUploaded != 0 || rep.FilesUnchanged != int64(len(names)) {
		t.Fatalf("rerun: code %d uploaded %d unchanged %d", code, rep.FilesUploaded, rep.FilesUnchanged)
	}
}

// TestFilesSyncSpecialFiles: symlinks are skipped unless followed (with loop
// detection), FIFOs and sockets are skipped and counted, empty files and
// files above the multipart threshold are uploaded intact.
func TestFilesSyncSpecialFiles(t *testing.T) {
	se := newSyncEnv(t, "")
	writeFile(t, se.src, "real/a.json", []byte("a"))
	writeFile(t, se.src, "empty.json", nil)
	big := make([]byte, 11<<20+123)
	_, _ = rand.Read(big)
	writeFile(t, se.src, "big.pdf", big)
	must(t, os.Symlink("real/a.json", filepath.Join(se.src, "link.json")))
	must(t, os.Symlink("../real", filepath.Join(se.src, "real", "loop")))  // loop when followed
	must(t, os.Symlink("real", filepath.Join(se.src, "linkdir")))          // a second path to real/
	must(t, os.Symlink("/nonexistent", filepath.Join(se.src, "dangling"))) // broken link
	must(t, syscall.Mkfifo(filepath.Join(se.src, "fifo"), 0o644))
	sock := filepath.Join(se.src, "sock")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	must(t, err)
	defer syscall.Close(fd)
	must(t, syscall.Bind(fd, &syscall.SockaddrUnix{Name: sock}))

	code, rep, out := se.sync("--multipart-threshold", "5242880")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	// link.json, real/loop, linkdir, dangling are links; fifo, sock special.
	if rep.FilesUploaded != 3 || rep.FilesSkipped != 6 {
		t.Fatalf("uploaded %d skipped %d, want 3 and 6\n%s", rep.FilesUploaded, rep.FilesSkipped, out)
	}
	got := bucketObjects(t, se.s3)
	if !bytes.Equal(got["big.pdf"], big) {
		t.Fatalf("multipart object differs: %d bytes, want %d", len(got["big.pdf"]), len(big))
	}
	if b, ok := got["empty.json"]; !ok || len(b) != 0 {
		t.Fatalf("empty file: present %v, %d bytes", ok, len(b))
	}

	// Following links: link.json and linkdir/a.json are uploaded; the
	// loop and the dangling link are reported.
	se2 := newSyncEnv(t, "")
	se2.src = se.src
	code, rep, out = se2.sync("--follow-symlinks", "--multipart-threshold", "5242880")
	if code != 2 {
		t.Fatalf("follow: exit %d, want 2 (loops, dangling)\n%s", code, out)
	}
	got = bucketObjects(t, se2.s3)
	for _, k := range []string{"link.json", "linkdir/a.json", "real/a.json"} {
		if string(got[k]) != "a" {
			t.Errorf("follow: %s = %q, want \"a\"", k, got[k])
		}
	}
	// real/loop and linkdir/loop (the same loop seen through the link).
	if rep.FilesFailed != 3 {
		t.Fatalf("follow: failed %d, want 3 (2 loops + dangling): %+v", rep.FilesFailed, rep.Failures)
	}
	mustContain(t, out, "symlink loop")
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
