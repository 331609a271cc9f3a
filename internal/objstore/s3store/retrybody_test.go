package s3store

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/kwick/kwickmig/internal/objstore"
)

// TestRetryBodyRace: a server answers 503 before reading the body, then
// accepts the retry. Each attempt must read its own reader over the bytes,
// and once Put returns the store must not touch the caller's buffer again
// (the sync returns it to a pool). Run under -race (make test does): before
// the fix the retry's Seek raced with the transport still sending the first
// attempt, and the transport could still read the pooled buffer.
func TestRetryBodyRace(t *testing.T) {
	const size = 1 << 20
	var requests atomic.Int64
	var bad atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1)%2 == 1 {
			// Answer before reading a byte of the body.
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`<Error><Code>ServiceUnavailable</Code></Error>`))
			return
		}
		b, _ := io.ReadAll(r.Body)
		if len(b) != size || b[0] != b[size-1] {
			bad.Add(1)
		}
		w.Header().Set("ETag", `"e"`)
	}))
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "AK")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "SK")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	for _, mode := range putModes {
		t.Run(mode.name, func(t *testing.T) {
			st, err := New(context.Background(), Options{URL: "s3://bucket", EndpointURL: srv.URL, DisableFastPut: mode.disable})
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, size)
			for i := 0; i < 10; i++ {
				for j := range buf {
					buf[j] = byte(i) // what a pooled buffer's next user does
				}
				// A bytes.Reader (ReaderAt) and a plain ReadSeeker both work.
				var body io.ReadSeeker = bytes.NewReader(buf)
				if i%2 == 1 {
					body = struct{ io.ReadSeeker }{body}
				}
				if _, err := st.Put(context.Background(), "k", body, size, objstore.PutOptions{CRC32C: "AAAAAA=="}); err != nil {
					t.Fatal(err)
				}
			}
			if n := bad.Load(); n > 0 {
				t.Fatalf("%d bodies arrived wrong", n)
			}
		})
	}
}
