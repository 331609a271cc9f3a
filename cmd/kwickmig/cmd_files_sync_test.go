package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kwick/kwickmig/internal/faultproxy"
	"github.com/kwick/kwickmig/internal/kmtest"
)

// syncReport decodes the --report file independently of ksync.Result, so
// the JSON field names that scripts depend on are what the tests check.
type syncReport struct {
	FilesScanned   int64 `json:"files_scanned"`
	FilesUploaded  int64 `json:"files_uploaded"`
	FilesUnchanged int64 `json:"files_unchanged"`
	FilesDeleted   int64 `json:"files_deleted"`
	FilesMissing   int64 `json:"files_missing_on_source"`
	FilesFailed    int64 `json:"files_failed"`
	FilesSkipped   int64 `json:"files_skipped"`
	BytesUploaded  int64 `json:"bytes_uploaded"`
	Throttles      int64 `json:"throttle_events"`
	Outages        int   `json:"outages"`
	Failures       []struct {
		Path, Reason string
	} `json:"failures"`
	MissingOnSource []string `json:"missing_on_source"`
	WouldUpload     []string `json:"would_upload"`
}

// syncEnv is a source dir, a bucket and a checkpoint for one test.
type syncEnv struct {
	t   *testing.T
	s3  *kmtest.S3Env
	src string
	cp  string
	dst string
	rep string

	verifyArgs []string // appended to every verify files run
}

func newSyncEnv(t *testing.T, prefix string) *syncEnv {
	e := kmtest.S3(t)
	e.SetAWSEnv(t)
	dir := t.TempDir()
	se := &syncEnv{t: t, s3: e, src: filepath.Join(dir, "src"), cp: filepath.Join(dir, "kwickmig.db"),
		rep: filepath.Join(dir, "report.json"), dst: "s3://" + e.Bucket}
	if prefix != "" {
		se.dst += "/" + prefix
	}
	if err := os.MkdirAll(se.src, 0o755); err != nil {
		t.Fatal(err)
	}
	return se
}

// sync runs files sync with extra flags; it returns the exit code, the
// parsed JSON report and the human output.
func (se *syncEnv) sync(extra ...string) (int, syncReport, string) {
	se.t.Helper()
	_ = os.Remove(se.rep)
	args := append([]string{"files", "sync", "--src", se.src, "--dst", se.dst,
		"--endpoint-url", se.s3.Endpoint, "--checkpoint", se.cp, "--report", se.rep}, extra...)
	code, out, errOut := runCLI(se.t, context.Background(), args...)
	var rep syncReport
	if data, err := os.ReadFile(se.rep); err == nil {
		if err := json.Unmarshal(data, &rep); err != nil {
			se.t.Fatalf("report: %v", err)
		}
	}
	return code, rep, out + errOut
}

func TestFilesSyncBasic(t *testing.T) {
	se := newSyncEnv(t, "receipts")
	files := map[string][]byte{
		"s1/2026/01/02/a.json": []byte(`{"id":"a"}`),
		"s1/2026/01/02/b.pdf":  bytes.Repeat([]byte("pdf"), 3000),
		"s2/2026/01/03/c.json": []byte(`{"id":"c"}`),
		"top.json":             []byte(`{}`),
		"empty.json":           {},
	}
	for rel, b := range files {
		writeFile(t, se.src, rel, b)
	}
	code, rep, out := se.sync()
	if code != 0 || rep.FilesUploaded != 5 || rep.FilesScanned != 5 {
		t.Fatalf("first run: code %d, uploaded %d scanned %d, want 0, 5, 5\n%s", code, rep.FilesUploaded, rep.FilesScanned, out)
	}
	got := bucketObjects(t, se.s3)
	if len(got) != len(files) {
		t.Fatalf("bucket has %v, want %d objects", keys(got), len(files))
	}
	for rel, want := range files {
		if b, ok := got["receipts/"+rel]; !ok || !bytes.Equal(b, want) {
			t.Fatalf("object receipts/%s: present %v, bytes equal %v; bucket %v", rel, ok, bytes.Equal(b, want), keys(got))
		}
	}
	head, err := se.s3.Client.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &se.s3.Bucket, Key: strPtr("receipts/s1/2026/01/02/a.json")})
	if err != nil {
		t.Fatal(err)
	}
	if ct := *head.ContentType; ct != "application/json" {
		t.Errorf("content type %q, want application/json", ct)
	}
	st, _ := os.Stat(filepath.Join(se.src, "s1/2026/01/02/a.json"))
	if got, want := head.Metadata["mtime"], formatUnix(st.ModTime()); got != want {
		t.Errorf("x-amz-meta-mtime %q, want %q", got, want)
	}
	if fi, _ := os.Stat(se.cp); fi.Mode().Perm() != 0o600 {
		t.Errorf("checkpoint mode %v, want 0600", fi.Mode().Perm())
	}

	// No change: nothing uploaded.
	code, rep, out = se.sync()
	if code != 0 || rep.FilesUploaded != 0 || rep.FilesUnchanged != 5 {
		t.Fatalf("rerun: code %d uploaded %d unchanged %d, want 0, 0, 5\n%s", code, rep.FilesUploaded, rep.FilesUnchanged, out)
	}

	// A same-size rewrite that restores the mtime (aws s3 sync misses it),
	// an append, a deletion.
	p := filepath.Join(se.src, "s1/2026/01/02/a.json")
	orig, _ := os.Stat(p)
	if err := os.WriteFile(p, []byte(`{"id":"A"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, orig.ModTime(), orig.ModTime()); err != nil {
		t.Fatal(err)
	}
	writeFile(t, se.src, "top.json", []byte(`{"more":1}`))
	if err := os.Remove(filepath.Join(se.src, "s2/2026/01/03/c.json")); err != nil {
		t.Fatal(err)
	}
	code, rep, out = se.sync()
	if code != 0 || rep.FilesUploaded != 2 || rep.FilesMissing != 1 || rep.FilesDeleted != 0 {
		t.Fatalf("changed run: code %d uploaded %d missing %d deleted %d, want 0 2 1 0\n%s", code, rep.FilesUploaded, rep.FilesMissing, rep.FilesDeleted, out)
	}
	mustContain(t, out, "s2/2026/01/03/c.json")
	got = bucketObjects(t, se.s3)
	if string(got["receipts/s1/2026/01/02/a.json"]) != `{"id":"A"}` {
		t.Fatalf("same-size rewrite not uploaded: %q", got["receipts/s1/2026/01/02/a.json"])
	}
	if _, ok := got["receipts/s2/2026/01/03/c.json"]; !ok {
		t.Fatal("object deleted without --delete")
	}

	// Dry run with --delete: reports, changes nothing.
	before, _ := os.ReadFile(se.cp)
	code, rep, out = se.sync("--delete", "--dry-run")
	if code != 0 || rep.FilesDeleted != 1 {
		t.Fatalf("dry run: code %d deleted %d, want 0 1\n%s", code, rep.FilesDeleted, out)
	}
	after, _ := os.ReadFile(se.cp)
	if !bytes.Equal(before, after) {
		t.Fatal("dry run changed the checkpoint")
	}
	if _, ok := bucketObjects(t, se.s3)["receipts/s2/2026/01/03/c.json"]; !ok {
		t.Fatal("dry run deleted an object")
	}

	// --delete removes the object and the record; the whole s2 tree goes.
	code, rep, out = se.sync("--delete")
	if code != 0 || rep.FilesDeleted != 1 {
		t.Fatalf("delete run: code %d deleted %d, want 0 1\n%s", code, rep.FilesDeleted, out)
	}
	if _, ok := bucketObjects(t, se.s3)["receipts/s2/2026/01/03/c.json"]; ok {
		t.Fatal("--delete left the object")
	}
	code, rep, _ = se.sync("--delete")
	if code != 0 || rep.FilesDeleted != 0 || rep.FilesMissing != 0 || rep.FilesUploaded != 0 || rep.FilesUnchanged != 4 {
		t.Fatalf("after delete: %+v", rep)
	}
}

func TestFilesSyncRefusals(t *testing.T) {
	se := newSyncEnv(t, "")
	writeFile(t, se.src, "a.json", []byte("x"))
	ctx := context.Background()

	t.Run("missing bucket writes nothing", func(t *testing.T) {
		cp := filepath.Join(t.TempDir(), "cp.db")
		code, _, errOut := runCLI(t, ctx, "files", "sync", "--src", se.src, "--dst", "s3://no-such-bucket-kwick",
			"--endpoint-url", se.s3.Endpoint, "--checkpoint", cp)
		if code != 1 {
			t.Fatalf("exit %d, want 1", code)
		}
		mustContain(t, errOut, "no-such-bucket-kwick")
		if _, err := os.Stat(cp); !os.IsNotExist(err) {
			t.Fatal("checkpoint created for a missing bucket")
		}
	})
	t.Run("bad credentials", func(t *testing.T) {
		t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
		code, _, errOut := runCLI(t, ctx, "files", "sync", "--src", se.src, "--dst", se.dst,
			"--endpoint-url", se.s3.Endpoint, "--checkpoint", filepath.Join(t.TempDir(), "cp.db"))
		if code != 1 {
			t.Fatalf("exit %d, want 1: %s", code, errOut)
		}
		mustContain(t, errOut, se.s3.Bucket)
	})
	t.Run("bad flags", func(t *testing.T) {
		for _, args := range [][]string{
			{"files", "sync", "--dst", se.dst},
			{"files", "sync", "--src", se.src},
			{"files", "sync", "--src", "/nonexistent", "--dst", se.dst},
			{"files", "sync", "--src", se.src, "--dst", "bucket-without-scheme"},
			{"files", "sync", "--src", se.src, "--dst", se.dst, "--concurrency", "0"},
			{"files", "sync", "--src", se.src, "--dst", se.dst, "--exclude", "[bad"},
		} {
			code, _, errOut := runCLI(t, ctx, args...)
			if code != 1 || len(bytes.Split(bytes.TrimSpace([]byte(errOut)), []byte("\n"))) != 1 {
				t.Errorf("%v: exit %d, want 1 with one error line; stderr:\n%s", args, code, errOut)
			}
		}
	})
	t.Run("checkpoint of another pairing", func(t *testing.T) {
		if code, _, out := se.sync(); code != 0 {
			t.Fatalf("first sync: %d %s", code, out)
		}
		other := t.TempDir()
		code, _, errOut := runCLI(t, ctx, "files", "sync", "--src", other, "--dst", se.dst,
			"--endpoint-url", se.s3.Endpoint, "--checkpoint", se.cp)
		if code != 1 {
			t.Fatalf("exit %d, want 1", code)
		}
		mustContain(t, errOut, "another --checkpoint")
	})
}

func strPtr(s string) *string { return &s }

func formatUnix(t time.Time) string {
	return formatMtimeForTest(t.UnixNano())
}

// TestFilesSyncRequestCounts counts requests at the wire: an unchanged
// re-run sends exactly one (HeadBucket) and never lists the bucket, and
// --max-rps caps the request rate.
func TestFilesSyncRequestCounts(t *testing.T) {
	se := newSyncEnv(t, "")
	proxy, err := faultproxy.New(se.s3.Endpoint, faultproxy.Faults{})
	must(t, err)
	defer proxy.Close()
	for i := range 60 {
		writeFile(t, se.src, fmt.Sprintf("d%d/%02d.json", i%4, i), []byte(fmt.Sprint(i)))
	}
	se.s3.Endpoint = proxy.URL
	start := time.Now()
	code, rep, out := se.sync("--max-rps", "30")
	elapsed := time.Since(start)
	if code != 0 || rep.FilesUploaded != 60 {
		t.Fatalf("first run: code %d uploaded %d\n%s", code, rep.FilesUploaded, out)
	}
	// 61 requests at 30/s take at least 2 s.
	if elapsed < 1800*time.Millisecond {
		t.Fatalf("61 requests with --max-rps 30 took %v, want >= ~2s", elapsed)
	}
	before := proxy.Requests.Load()
	code, rep, _ = se.sync()
	if code != 0 || rep.FilesUnchanged != 60 {
		t.Fatalf("rerun: code %d unchanged %d", code, rep.FilesUnchanged)
	}
	if n := proxy.Requests.Load() - before; n != 1 {
		t.Fatalf("unchanged rerun sent %d requests, want 1 (HeadBucket)", n)
	}
}

// TestFilesSyncChecksum: --checksum decides by content. A file rewritten
// with the same bytes is not uploaded again (only its record refreshed); a
// changed one is, whatever its stat says.
func TestFilesSyncChecksum(t *testing.T) {
	se := newSyncEnv(t, "")
	writeFile(t, se.src, "same.json", []byte("same"))
	writeFile(t, se.src, "changed.json", []byte("v1"))
	if code, rep, out := se.sync(); code != 0 || rep.FilesUploaded != 2 {
		t.Fatalf("first run: %d %d\n%s", code, rep.FilesUploaded, out)
	}
	writeFile(t, se.src, "same.json", []byte("same")) // new mtime/ctime, same bytes
	writeFile(t, se.src, "changed.json", []byte("v2"))
	code, rep, out := se.sync("--checksum")
	if code != 0 || rep.FilesUploaded != 1 || rep.FilesUnchanged != 1 {
		t.Fatalf("--checksum: code %d uploaded %d unchanged %d, want 0 1 1\n%s", code, rep.FilesUploaded, rep.FilesUnchanged, out)
	}
	if got := bucketObjects(t, se.s3)["changed.json"]; string(got) != "v2" {
		t.Fatalf("changed.json = %q, want v2", got)
	}
	// The refreshed record means a plain run now sees nothing to do.
	if code, rep, _ := se.sync(); code != 0 || rep.FilesUploaded != 0 || rep.FilesUnchanged != 2 {
		t.Fatalf("plain rerun: code %d uploaded %d unchanged %d", code, rep.FilesUploaded, rep.FilesUnchanged)
	}
}
