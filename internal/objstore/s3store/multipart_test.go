package s3store

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kwick/kwickmig/internal/faultproxy"
	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/objstore"
)

// onlyReadSeeker hides io.ReaderAt, to exercise the Seek adapter.
type onlyReadSeeker struct{ io.ReadSeeker }

// TestMultipartFullObjectChecksum uploads objects above the multipart
// threshold to versitygw and checks that the stored checksum is the whole
// body's CRC32C with type FULL_OBJECT (not a composite "…-N"), that the
// server refuses a body whose CRC32C is wrong (and keeps no object and no
// pending upload), and that parts are sized as asked.
func TestMultipartFullObjectChecksum(t *testing.T) {
	e := kmtest.S3(t)
	e.SetAWSEnv(t)
	ctx := context.Background()
	st, err := New(ctx, Options{URL: "s3://" + e.Bucket, EndpointURL: e.Endpoint, MultipartThreshold: 5 << 20, PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 12<<20+123)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range body {
		body[i] = byte(r.Uint32())
	}
	sum := objstore.EncodeCRC32C(crc32.Checksum(body, objstore.Castagnoli))
	for _, c := range []struct {
		name string
		body io.ReadSeeker
		opts objstore.PutOptions
	}{
		{"given-crc", bytes.NewReader(body), objstore.PutOptions{CRC32C: sum}},
		{"computed-crc", bytes.NewReader(body), objstore.PutOptions{}},
		{"seeker-only", onlyReadSeeker{bytes.NewReader(body)}, objstore.PutOptions{CRC32C: sum}},
	} {
		res, err := st.Put(ctx, c.name, c.body, int64(len(body)), c.opts)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if res.CRC32C != sum {
			t.Fatalf("%s: result CRC32C %s, want %s", c.name, res.CRC32C, sum)
		}
		info, err := st.Head(ctx, c.name)
		if err != nil {
			t.Fatal(err)
		}
		if info.Checksum != "crc32c:"+sum || info.ChecksumType != objstore.ChecksumFullObject || info.Size != int64(len(body)) {
			t.Fatalf("%s: head %+v, want crc32c:%s FULL_OBJECT", c.name, info, sum)
		}
		size, parts, err := st.HeadPart(ctx, c.name, 1)
		if err != nil || size != 5<<20 || parts != 3 {
			t.Fatalf("%s: part 1: size %d parts %d err %v, want 5 MiB of 3", c.name, size, parts, err)
		}
		rc, err := st.Open(ctx, c.name)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, body) {
			t.Fatalf("%s: read back %d bytes, differ", c.name, len(got))
		}
	}
	// A wrong whole-object CRC32C: the parts are fine, the completion is refused.
	_, err = st.Put(ctx, "wrong", bytes.NewReader(body), int64(len(body)), objstore.PutOptions{CRC32C: "AAAAAA=="})
	if err == nil {
		t.Fatal("multipart put with a wrong CRC32C succeeded")
	}
	if _, err := st.Head(ctx, "wrong"); !errors.Is(err, objstore.ErrNotExist) {
		t.Fatalf("head of a refused object: %v, want ErrNotExist", err)
	}
	ups, err := e.Client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &e.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Fatalf("%d multipart uploads left pending after a failed put", len(ups.Uploads))
	}
	// A body shorter than its stated size fails and leaves nothing behind.
	if _, err := st.Put(ctx, "short", bytes.NewReader(body[:6<<20]), int64(len(body)), objstore.PutOptions{CRC32C: sum}); err == nil {
		t.Fatal("put of a short body succeeded")
	}
	if _, err := st.Head(ctx, "short"); !errors.Is(err, objstore.ErrNotExist) {
		t.Fatalf("head of a short object: %v, want ErrNotExist", err)
	}
}

// TestMultipartRetries uploads parts through a proxy that answers 503 and
// 500 before reading the body and drops connections, only on UploadPart
// requests: every part is retried with its own reader over the body and
// the object arrives intact with its full-object CRC32C. A part that keeps
// failing (every UploadPart fails) aborts the upload: no object, no
// pending multipart upload.
func TestMultipartRetries(t *testing.T) {
	e := kmtest.S3(t)
	e.SetAWSEnv(t)
	ctx := context.Background()
	isPart := func(r *http.Request) bool { return r.Method == http.MethodPut && r.URL.Query().Get("partNumber") != "" }
	proxy, err := faultproxy.New(e.Endpoint, faultproxy.Faults{SlowDown: 0.2, Internal: 0.2, Reset: 0.1, Match: isPart})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	st, err := New(ctx, Options{URL: "s3://" + e.Bucket, EndpointURL: proxy.URL, MultipartThreshold: 5 << 20, PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 26<<20)
	r := rand.New(rand.NewPCG(7, 8))
	for i := range body {
		body[i] = byte(r.Uint32())
	}
	sum := objstore.EncodeCRC32C(crc32.Checksum(body, objstore.Castagnoli))
	if _, err := st.Put(ctx, "flaky", bytes.NewReader(body), int64(len(body)), objstore.PutOptions{CRC32C: sum}); err != nil {
		t.Fatal(err)
	}
	if n := proxy.SlowDowns.Load() + proxy.Internals.Load() + proxy.Resets.Load(); n == 0 {
		t.Fatal("no fault was injected")
	}
	info, err := st.Head(ctx, "flaky")
	if err != nil || info.Checksum != "crc32c:"+sum || info.ChecksumType != objstore.ChecksumFullObject {
		t.Fatalf("head %+v, %v; want crc32c:%s FULL_OBJECT", info, err, sum)
	}
	rc, err := st.Open(ctx, "flaky")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, body) {
		t.Fatal("object differs after retried parts")
	}

	dead, err := faultproxy.New(e.Endpoint, faultproxy.Faults{Internal: 1, Match: isPart})
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	st2, err := New(ctx, Options{URL: "s3://" + e.Bucket, EndpointURL: dead.URL, MultipartThreshold: 5 << 20, PartSize: 5 << 20, MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st2.Put(ctx, "dead", bytes.NewReader(body), int64(len(body)), objstore.PutOptions{CRC32C: sum}); err == nil {
		t.Fatal("put succeeded although every part failed")
	}
	if _, err := st.Head(ctx, "dead"); !errors.Is(err, objstore.ErrNotExist) {
		t.Fatalf("head after a failed multipart put: %v, want ErrNotExist", err)
	}
	ups, err := e.Client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &e.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Fatalf("%d multipart uploads left pending after a failed put", len(ups.Uploads))
	}
}
