package sync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/faultproxy"
	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/objstore/s3store"
)

type fixture struct {
	t     *testing.T
	s3    *kmtest.S3Env
	src   string
	cp    *checkpoint.DB
	store *s3store.Store
	pacer *objstore.Pacer
}

func newFixture(t *testing.T, endpoint string) *fixture {
	t.Helper()
	e := kmtest.S3(t)
	e.SetAWSEnv(t)
	if endpoint == "" {
		endpoint = e.Endpoint
	}
	f := &fixture{t: t, s3: e, src: t.TempDir(), pacer: objstore.NewPacer(0)}
	var err error
	f.store, err = s3store.New(context.Background(), s3store.Options{
		URL: "s3://" + e.Bucket + "/pre", EndpointURL: endpoint, Concurrency: 16, Pacer: f.pacer,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.cp, err = checkpoint.Open(filepath.Join(t.TempDir(), "cp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.cp.Close() })
	return f
}

func (f *fixture) write(rel string, b []byte) {
	f.t.Helper()
	p := filepath.Join(f.src, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) run(o Options) *Result {
	f.t.Helper()
	o.Src, o.Prefix, o.Pacer = f.src, f.store.Prefix(), f.pacer
	if o.Concurrency == 0 {
		o.Concurrency = 16
	}
	res, err := New(f.store, f.cp, o).Run(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

func (f *fixture) object(rel string) ([]byte, bool) {
	f.t.Helper()
	r, err := f.store.Open(context.Background(), rel)
	if err != nil {
		return nil, false
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		f.t.Fatal(err)
	}
	return b, true
}

// TestVanishedAndChangingFiles: a file removed between walk and upload and a
// file that keeps changing while it is read are reported, not recorded, and
// the rest of the run goes on.
func TestVanishedAndChangingFiles(t *testing.T) {
	f := newFixture(t, "")
	for i := range 20 {
		f.write(fmt.Sprintf("d/f%02d.json", i), []byte(fmt.Sprint(i)))
	}
	f.write("d/vanish.json", []byte("v"))
	f.write("d/busy.json", bytes.Repeat([]byte("b"), 2<<20)) // streamed from disk: a long read
	busyPath := filepath.Join(f.src, "d/busy.json")

	// The busy file changes after every read, before the checks: a writer
	// that never stops, at a moment no scheduler can move (a goroutine
	// appending in a loop may simply not run during a read on a loaded
	// machine).
	appends := 0
	res := f.run(Options{
		BeforeUpload: func(rel string) {
			if rel == "d/vanish.json" {
				os.Remove(filepath.Join(f.src, rel))
			}
		},
		AfterRead: func(rel string) {
			if rel == "d/busy.json" {
				fh, _ := os.OpenFile(busyPath, os.O_APPEND|os.O_WRONLY, 0)
				fh.Write([]byte("x"))
				fh.Close()
				appends++
			}
		},
	})
	if appends != 3 {
		t.Errorf("busy file read %d times, want 3 (the first try and two retries)", appends)
	}
	if res.FilesUploaded != 20 || res.FilesFailed != 2 {
		t.Fatalf("uploaded %d failed %d, want 20 and 2: %+v", res.FilesUploaded, res.FilesFailed, res.Failures)
	}
	reasons := map[string]string{}
	for _, fl := range res.Failures {
		reasons[fl.Path] = fl.Reason
	}
	if r := reasons["d/vanish.json"]; r != "file disappeared before it could be uploaded" {
		t.Errorf("vanish reason %q", r)
	}
	if r := reasons["d/busy.json"]; r != errChanged.Error() {
		t.Errorf("busy reason %q", r)
	}
	for _, rel := range []string{"d/vanish.json", "d/busy.json"} {
		if _, ok, _ := f.cp.Lookup(rel); ok {
			t.Errorf("%s recorded although it failed", rel)
		}
	}
	// Once quiet, the busy file is uploaded with its final bytes.
	res = f.run(Options{})
	want, _ := os.ReadFile(busyPath)
	if got, _ := f.object("d/busy.json"); res.FilesUploaded != 1 || !bytes.Equal(got, want) {
		t.Fatalf("rerun uploaded %d; busy object %d bytes, want %d", res.FilesUploaded, len(got), len(want))
	}
}

// TestFaultyDestination syncs through a proxy that throttles, fails and
// resets connections: the run completes, nothing is lost, throttles counted.
func TestFaultyDestination(t *testing.T) {
	e := kmtest.S3(t)
	proxy, err := faultproxy.New(e.Endpoint, faultproxy.Faults{SlowDown: 0.05, Internal: 0.03, Reset: 0.03,
		Latency: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	f := newFixture(t, proxy.URL)
	// Reuse the bucket the proxy fronts.
	f.s3 = e
	f.store, err = s3store.New(context.Background(), s3store.Options{
		URL: "s3://" + e.Bucket, EndpointURL: proxy.URL, Concurrency: 32, Pacer: f.pacer,
	})
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	for i := range n {
		f.write(fmt.Sprintf("s%d/%03d.json", i%7, i), bytes.Repeat([]byte{byte(i)}, 100+i*10))
	}
	res := f.run(Options{Concurrency: 32})
	if res.FilesUploaded != n || res.FilesFailed != 0 {
		t.Fatalf("uploaded %d failed %d, want %d 0: %+v", res.FilesUploaded, res.FilesFailed, n, res.Failures)
	}
	if res.Throttles == 0 || proxy.SlowDowns.Load() == 0 || proxy.Resets.Load() == 0 || proxy.Internals.Load() == 0 {
		t.Fatalf("faults not exercised: throttles %d, proxy slowdowns %d resets %d internals %d",
			res.Throttles, proxy.SlowDowns.Load(), proxy.Resets.Load(), proxy.Internals.Load())
	}
	proxy.SetFaults(faultproxy.Faults{})
	for i := range n {
		got, ok := f.object(fmt.Sprintf("s%d/%03d.json", i%7, i))
		if !ok || !bytes.Equal(got, bytes.Repeat([]byte{byte(i)}, 100+i*10)) {
			t.Fatalf("object %d missing or wrong (present %v)", i, ok)
		}
	}
	if c, _ := f.cp.CountFiles(); c != n {
		t.Fatalf("checkpoint has %d records, want %d", c, n)
	}
	t.Logf("proxy: %d requests, %d SlowDown, %d 500, %d resets; pacer rate now %.0f/s",
		proxy.Requests.Load(), proxy.SlowDowns.Load(), proxy.Internals.Load(), proxy.Resets.Load(), f.pacer.Rate())
}

// TestPermanentErrorsNotRetried: a 403 from the server fails the file at
// once (no retry storm) and, since every other request would get the same
// answer, stops the whole run with that error; no file counts as failed.
func TestPermanentErrorsNotRetried(t *testing.T) {
	e := kmtest.S3(t)
	f := newFixture(t, "")
	for i := range 200 {
		f.write(fmt.Sprintf("d%d/%03d.json", i%4, i), []byte("a"))
	}
	// Wrong secret: every PUT gets 403 SignatureDoesNotMatch.
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	store, err := s3store.New(context.Background(), s3store.Options{URL: "s3://" + e.Bucket, EndpointURL: e.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := New(store, f.cp, Options{Src: f.src, Concurrency: 4}).Run(context.Background())
	if !errors.Is(err, objstore.ErrFatal) || !strings.Contains(err.Error(), "403") {
		t.Fatalf("run error %v, want a fatal 403", err)
	}
	if res.FilesFailed != 0 || res.FilesUploaded != 0 || res.Error == "" || time.Since(start) > 5*time.Second {
		t.Fatalf("failed %d uploaded %d error %q in %v, want 0, 0, the reason, quickly", res.FilesFailed, res.FilesUploaded, res.Error, time.Since(start))
	}
	if c, _ := f.cp.CountFiles(); c != 0 {
		t.Fatalf("%d records after a run that uploaded nothing", c)
	}
}

// A large file that changes while its parts upload never replaces the
// good object of an earlier run: the multipart upload is aborted before it
// completes, the file is reported, and the next quiet run uploads it whole.
func TestMultipartChangedFileKeepsOldObject(t *testing.T) {
	f := newFixture(t, "")
	var err error
	f.store, err = s3store.New(context.Background(), s3store.Options{
		URL: "s3://" + f.s3.Bucket + "/pre", EndpointURL: f.s3.Endpoint, Concurrency: 4, Pacer: f.pacer,
		MultipartThreshold: 5 << 20, PartSize: 5 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	v1 := bytes.Repeat([]byte("1"), 11<<20)
	f.write("big.bin", v1)
	if res := f.run(Options{}); res.FilesUploaded != 1 {
		t.Fatalf("first run uploaded %d", res.FilesUploaded)
	}
	p := filepath.Join(f.src, "big.bin")
	f.write("big.bin", bytes.Repeat([]byte("2"), 11<<20))
	completes := 0
	res := f.run(Options{BeforeComplete: func(rel string) {
		completes++
		fh, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
		fh.Write([]byte("appended while the parts were read"))
		fh.Close()
	}})
	if res.FilesFailed != 1 || res.FilesUploaded != 0 || completes == 0 {
		t.Fatalf("changing file: uploaded %d failed %d (completes %d), want 0, 1: %+v", res.FilesUploaded, res.FilesFailed, completes, res.Failures)
	}
	if got, _ := f.object("big.bin"); !bytes.Equal(got, v1) {
		t.Fatalf("the object is no longer the first run's (%d bytes): a changing file replaced it", len(got))
	}
	res = f.run(Options{})
	want, _ := os.ReadFile(p)
	if got, _ := f.object("big.bin"); res.FilesUploaded != 1 || !bytes.Equal(got, want) {
		t.Fatalf("quiet rerun uploaded %d; object %d bytes, want %d", res.FilesUploaded, len(got), len(want))
	}
}
