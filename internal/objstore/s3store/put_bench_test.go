package s3store

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/kwick/kwickmig/internal/objstore"
)

// BenchmarkPut measures the client's own cost per small PutObject (CPU and
// allocations) against a server that answers at once, so the figure is
// kwickmig's and the SDK's share of the per-file budget.
func BenchmarkPut(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("ETag", `"0123456789abcdef"`)
	}))
	defer srv.Close()
	b.Setenv("AWS_ACCESS_KEY_ID", "AK")
	b.Setenv("AWS_SECRET_ACCESS_KEY", "SK")
	b.Setenv("AWS_REGION", "us-east-1")
	b.Setenv("AWS_CONFIG_FILE", "/dev/null")
	st, err := New(context.Background(), Options{URL: "s3://bucket/prefix", EndpointURL: srv.URL, Pacer: objstore.NewPacer(0)})
	if err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte("r"), 4096)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, err := st.Put(context.Background(), "store/2026/01/01/x.json", bytes.NewReader(body), int64(len(body)),
			objstore.PutOptions{ContentType: "application/json", Metadata: map[string]string{"mtime": "1.000000001"}, CRC32C: "AAAAAA=="})
		if err != nil {
			b.Fatal(err)
		}
	}
}
