package s3store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/faultproxy"
	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/objstore"
)

// silentBudget is how long any call may take against a silent endpoint
// with a 300ms request timeout: 3 attempts plus the jittered backoff
// between them.
const silentBudget = 8 * time.Second

// TestSilentEndpoint puts versitygw behind a proxy that accepts connections
// and requests but never answers, and checks that every store call returns
// an error within a few request timeouts instead of hanging (issue 8 #3).
func TestSilentEndpoint(t *testing.T) {
	e := kmtest.S3(t)
	e.SetAWSEnv(t)
	proxy, err := faultproxy.New(e.Endpoint, faultproxy.Faults{})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	// A 16 MiB single PUT fills the socket buffers of a peer that reads
	// nothing, so only the attempt's deadline can end it: make it short.
	defer func(v int64, d time.Duration) { minThroughput, attemptSlack = v, d }(minThroughput, attemptSlack)
	minThroughput, attemptSlack = 64<<20, 100*time.Millisecond
	ctx := context.Background()
	open := func(disable bool) *Store {
		st, err := New(ctx, Options{URL: "s3://" + e.Bucket, EndpointURL: proxy.URL, DisableFastPut: disable,
			RequestTimeout: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	fast, sdk := open(false), open(true)
	if _, err := fast.Put(ctx, "k", strings.NewReader("x"), 1, objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := proxy.SetMode(faultproxy.Silent); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 16<<20)
	calls := map[string]func() error{
		"check": func() error { return fast.Check(ctx) },
		"put fast": func() error {
			_, err := fast.Put(ctx, "a", strings.NewReader("abc"), 3, objstore.PutOptions{})
			return err
		},
		"put sdk": func() error {
			_, err := sdk.Put(ctx, "b", strings.NewReader("abc"), 3, objstore.PutOptions{})
			return err
		},
		"put fast 16MiB": func() error {
			_, err := fast.Put(ctx, "c", bytes.NewReader(big), int64(len(big)), objstore.PutOptions{CRC32C: "AAAAAA=="})
			return err
		},
		"put sdk 16MiB": func() error {
			_, err := sdk.Put(ctx, "d", bytes.NewReader(big), int64(len(big)), objstore.PutOptions{CRC32C: "AAAAAA=="})
			return err
		},
		"head":   func() error { _, err := fast.Head(ctx, "k"); return err },
		"list":   func() error { return fast.List(ctx, "", "", func(objstore.ObjectInfo) error { return nil }) },
		"delete": func() error { return fast.Delete(ctx, "k") },
		"open": func() error {
			r, err := fast.Open(ctx, "k")
			if err == nil {
				r.Close()
			}
			return err
		},
	}
	var wg sync.WaitGroup
	for name, call := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			err := call()
			d := time.Since(start)
			t.Logf("%s: %v after %v", name, err, d.Round(time.Millisecond))
			if !errors.Is(err, objstore.ErrUnreachable) || errors.Is(err, objstore.ErrFatal) {
				t.Errorf("%s: %v, want an ErrUnreachable error", name, err)
			}
			if d > silentBudget {
				t.Errorf("%s: returned after %v, want < %v", name, d, silentBudget)
			}
		}()
	}
	wg.Wait()
	// At most maxConnAttempts each, though MaxAttempts is 10.
	if n := proxy.Held.Load(); n < int64(len(calls)) || n > maxConnAttempts*int64(len(calls)) {
		t.Fatalf("the proxy held %d requests for %d calls", n, len(calls))
	}
}

// TestOpenBodyStall: an object body that stops arriving mid-way fails the
// reader after one request timeout instead of blocking it forever.
func TestOpenBodyStall(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		<-release
	}))
	defer srv.Close()
	defer close(release) // before srv.Close, which waits for the handler
	t.Setenv("AWS_ACCESS_KEY_ID", "AK")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "SK")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	st, err := New(context.Background(), Options{URL: "s3://bucket", EndpointURL: srv.URL, RequestTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.Open(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	start := time.Now()
	got, err := io.ReadAll(r)
	if err == nil || string(got) != "partial" {
		t.Fatalf("read %q, %v; want the partial body and an error", got, err)
	}
	var te interface{ Timeout() bool }
	if !errors.As(err, &te) || !te.Timeout() {
		t.Fatalf("read error %v, want a timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("stalled body read returned after %v", d)
	}
}
