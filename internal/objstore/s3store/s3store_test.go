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

// TestStore runs the Store contract against versitygw, once through the
// fast PUT path and once through the SDK's PutObject, with keys that need
// escaping in URLs and signatures.
func TestStore(t *testing.T) {
	for _, mode := range []struct {
		name    string
		disable bool
	}{{"fast", false}, {"sdk", true}} {
		t.Run(mode.name, func(t *testing.T) {
			e := kmtest.S3(t)
			e.SetAWSEnv(t)
			ctx := context.Background()
			st, err := New(ctx, Options{URL: "s3://" + e.Bucket + "/pre/", EndpointURL: e.Endpoint, DisableFastPut: mode.disable})
			if err != nil {
				t.Fatal(err)
			}
			if (st.fast != nil) == mode.disable {
				t.Fatalf("fast path enabled=%v, want %v", st.fast != nil, !mode.disable)
			}
			if err := st.Check(ctx); err != nil {
				t.Fatal(err)
			}
			keys := []string{"a.json", "dir/with space+plus.json", "pct%25/%!x", "q?#hash", "new\nline", `back\slash`,
				"caf\u00e9", "cafe\u0301", "日本/領収書.json", "-dash", "empty", "tilde~star*(paren)"}
			for i, k := range keys {
				body := bytes.Repeat([]byte{byte('a' + i)}, i*100)
				res, err := st.Put(ctx, k, bytes.NewReader(body), int64(len(body)),
					objstore.PutOptions{ContentType: "application/json", Metadata: map[string]string{"mtime": "1.5"}})
				if err != nil {
					t.Fatalf("put %q: %v", k, err)
				}
				if res.ETag == "" || res.CRC32C == "" {
					t.Fatalf("put %q: result %+v", k, res)
				}
				info, err := st.Head(ctx, k)
				if err != nil {
					t.Fatalf("head %q: %v", k, err)
				}
				if info.Size != int64(len(body)) || info.Metadata["mtime"] != "1.5" || info.Checksum != "crc32c:"+res.CRC32C {
					t.Fatalf("head %q: %+v, want size %d, mtime 1.5, checksum %s", k, info, len(body), res.CRC32C)
				}
				r, err := st.Open(ctx, k)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(r)
				r.Close()
				if !bytes.Equal(got, body) {
					t.Fatalf("open %q: %d bytes, want %d", k, len(got), len(body))
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
			missing, _ := New(ctx, Options{URL: "s3://no-such-bucket-" + e.Bucket, EndpointURL: e.Endpoint, DisableFastPut: mode.disable})
			if err := missing.Check(ctx); !errors.Is(err, objstore.ErrNotExist) {
				t.Fatalf("check missing bucket: %v, want ErrNotExist", err)
			}
			if _, err := missing.Put(ctx, "x", strings.NewReader("x"), 1, objstore.PutOptions{}); !errors.Is(err, objstore.ErrNotExist) {
				t.Fatalf("put into missing bucket: %v, want ErrNotExist", err)
			}
		})
	}
}
