package s3store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/objstore"
)

// putModes are the two PUT paths every conformance test runs through: the
// hand-built fast PutObject and the SDK's full middleware stack.
var putModes = []struct {
	name    string
	disable bool
}{{"fast", false}, {"sdk", true}}

// testThreshold keeps the multipart branch reachable with a small object.
const testThreshold = 5 << 20

// TestStore runs the Store contract against versitygw, once through the
// fast PUT path and once through the SDK's PutObject, with keys that need
// escaping in URLs and signatures.
func TestStore(t *testing.T) {
	for _, mode := range putModes {
		t.Run(mode.name, func(t *testing.T) {
			e := kmtest.S3(t)
			e.SetAWSEnv(t)
			conformance(t, Options{EndpointURL: e.Endpoint, DisableFastPut: mode.disable}, e.Bucket)
		})
	}
}

// conformance checks the Store contract on bucket (which must exist and be
// empty) with the given options (URL is set here).
func conformance(t *testing.T, o Options, bucket string) {
	t.Helper()
	ctx := context.Background()
	o.URL = "s3://" + bucket + "/pre/"
	o.MultipartThreshold, o.PartSize = testThreshold, testThreshold
	st, err := New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if (st.fast != nil) == o.DisableFastPut {
		t.Fatalf("fast path enabled=%v, want %v", st.fast != nil, !o.DisableFastPut)
	}
	if err := st.Check(ctx); err != nil {
		t.Fatal(err)
	}
	keys := []string{"a.json", "dir/with space+plus.json", "pct%25/%!x", "q?#hash", "new\nline", `back\slash`,
		"caf\u00e9", "cafe\u0301", "日本/領収書.json", "-dash", "empty", "tilde~star*(paren)", "large.bin"}
	for i, k := range keys {
		body := bytes.Repeat([]byte{byte('a' + i)}, i*100)
		if k == "large.bin" {
			// Above the multipart threshold: the transfer manager's path.
			body = bytes.Repeat([]byte("0123456789abcdef"), (testThreshold+(1<<20))/16)
		}
		res, err := st.Put(ctx, k, bytes.NewReader(body), int64(len(body)),
			objstore.PutOptions{ContentType: "application/json", Metadata: map[string]string{"mtime": "1.5"}})
		if err != nil {
			t.Fatalf("put %q: %v", k, err)
		}
		if res.ETag == "" || (res.CRC32C == "" && len(body) <= testThreshold) {
			t.Fatalf("put %q: result %+v", k, res)
		}
		info, err := st.Head(ctx, k)
		if err != nil {
			t.Fatalf("head %q: %v", k, err)
		}
		if info.Size != int64(len(body)) || info.Metadata["mtime"] != "1.5" {
			t.Fatalf("head %q: %+v, want size %d, mtime 1.5", k, info, len(body))
		}
		if len(body) <= testThreshold && info.Checksum != "crc32c:"+res.CRC32C {
			t.Fatalf("head %q: checksum %q, want crc32c:%s", k, info.Checksum, res.CRC32C)
		}
		r, err := st.Open(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("open %q: %d bytes (%v), want %d", k, len(got), err, len(body))
		}
	}
	var listed []string
	if err := st.List(ctx, "", "", func(o objstore.ObjectInfo) error {
		listed = append(listed, o.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(listed) != len(keys) {
		t.Fatalf("listed %q, want %d keys", listed, len(keys))
	}
	for i := 1; i < len(listed); i++ {
		if listed[i-1] >= listed[i] {
			t.Fatalf("list not in key order: %q", listed)
		}
	}
	// A wrong checksum is refused by the server (integrity).
	_, err = st.Put(ctx, "corrupt", strings.NewReader("abc"), 3, objstore.PutOptions{CRC32C: "AAAAAA=="})
	if err == nil {
		t.Fatal("put with a wrong CRC32C succeeded")
	}
	if _, err := st.Head(ctx, "corrupt"); !errors.Is(err, objstore.ErrNotExist) {
		t.Fatalf("head of a refused object: %v, want ErrNotExist", err)
	}
	if err := st.Delete(ctx, "a.json"); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "a.json"); err != nil {
		t.Fatalf("deleting an absent key: %v", err)
	}
	if _, err := st.Open(ctx, "a.json"); !errors.Is(err, objstore.ErrNotExist) {
		t.Fatalf("open deleted: %v, want ErrNotExist", err)
	}
	// A missing bucket.
	o.URL = "s3://no-such-bucket-" + bucket
	missing, err := New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := missing.Check(ctx); !errors.Is(err, objstore.ErrNotExist) {
		t.Fatalf("check missing bucket: %v, want ErrNotExist", err)
	}
	if _, err := missing.Put(ctx, "x", strings.NewReader("x"), 1, objstore.PutOptions{}); !errors.Is(err, objstore.ErrNotExist) {
		t.Fatalf("put into missing bucket: %v, want ErrNotExist", err)
	}
}
