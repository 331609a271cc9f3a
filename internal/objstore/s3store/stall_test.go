package s3store

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/faultproxy"
	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/objstore"
)

// TestStalledLargeUpload: an endpoint that stops reading the body of a
// large upload (frozen server, black hole) ends the attempt after one
// request timeout without progress, not after the size-based attempt
// deadline (4 s per MiB: over a minute here), on both PUT paths.
func TestStalledLargeUpload(t *testing.T) {
	e := kmtest.S3(t)
	e.SetAWSEnv(t)
	proxy, err := faultproxy.New(e.Endpoint, faultproxy.Faults{})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	big := bytes.Repeat([]byte("stall"), (32<<20)/5)
	for _, c := range []struct {
		name      string
		threshold int64
	}{{"single PUT", 64 << 20}, {"multipart", 8 << 20}} {
		t.Run(c.name, func(t *testing.T) {
			_ = proxy.SetMode(faultproxy.Normal)
			st, err := New(context.Background(), Options{URL: "s3://" + e.Bucket, EndpointURL: proxy.URL,
				RequestTimeout: 500 * time.Millisecond, MultipartThreshold: c.threshold, PartSize: 8 << 20})
			if err != nil {
				t.Fatal(err)
			}
			if c.threshold < int64(len(big)) {
				// Hold only the parts (the upload is created, its parts
				// are never read): the part path's own watchdog.
				proxy.SetFaults(faultproxy.Faults{Hold: 1, Match: func(r *http.Request) bool {
					return r.Method == http.MethodPut && r.URL.Query().Get("partNumber") != ""
				}})
			} else if err := proxy.SetMode(faultproxy.Silent); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = st.Put(context.Background(), "stall.bin", bytes.NewReader(big), int64(len(big)), objstore.PutOptions{})
			took := time.Since(start)
			if !errors.Is(err, objstore.ErrUnreachable) {
				t.Fatalf("err %v, want ErrUnreachable", err)
			}
			// The size-based deadline alone: 10s + 0.5s + 32 MiB at 256 KiB/s = 138.5 s per attempt.
			if took > 15*time.Second {
				t.Fatalf("stalled upload ended after %s", took)
			}
			t.Logf("%s: %s: %v", c.name, took.Round(10*time.Millisecond), err)
			proxy.SetFaults(faultproxy.Faults{})
		})
	}
	_ = proxy.SetMode(faultproxy.Normal)
}
