package s3store

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/kwick/kwickmig/internal/objstore"
)

// A PUT answered 404 by something that is not S3 (a misrouted proxy's HTML
// page) is fatal on both PUT paths: every other PUT would get the same
// answer, so files sync stops instead of failing file after file.
func TestPut404IsFatal(t *testing.T) {
	var puts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			puts.Add(1)
		}
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("<html><body>No route</body></html>"))
	}))
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	for _, disable := range []bool{false, true} {
		puts.Store(0)
		st, err := New(context.Background(), Options{URL: "s3://b/p", EndpointURL: srv.URL, Region: "us-east-1", DisableFastPut: disable})
		if err != nil {
			t.Fatal(err)
		}
		_, err = st.Put(context.Background(), "k.json", bytes.NewReader([]byte("x")), 1, objstore.PutOptions{})
		if !errors.Is(err, objstore.ErrFatal) {
			t.Fatalf("fast path disabled=%v: %v, want ErrFatal", disable, err)
		}
		if n := puts.Load(); n != 1 {
			t.Fatalf("fast path disabled=%v: %d PUTs, want 1 (no retries)", disable, n)
		}
	}
}
