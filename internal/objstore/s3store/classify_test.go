package s3store

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/kwick/kwickmig/internal/faultproxy"
	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/testenv"
)

// storeOp is one store call, on the fast or the SDK PUT path.
type storeOp struct {
	name string
	call func(ctx context.Context) error
}

// allOps returns every Store call against bucket at endpoint, Put on both
// paths. key "k" is what Head, Open and Delete ask for.
func allOps(t *testing.T, endpoint, bucket string, o Options) []storeOp {
	t.Helper()
	o.URL, o.EndpointURL = "s3://"+bucket, endpoint
	fast, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	o.DisableFastPut = true
	sdk, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	put := func(st *Store) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := st.Put(ctx, "p", strings.NewReader("body"), 4, objstore.PutOptions{})
			return err
		}
	}
	return []storeOp{
		{"check", fast.Check},
		{"put fast", put(fast)},
		{"put sdk", put(sdk)},
		{"head", func(ctx context.Context) error { _, err := fast.Head(ctx, "k"); return err }},
		{"list", func(ctx context.Context) error {
			return fast.List(ctx, "", "", func(objstore.ObjectInfo) error { return nil })
		}},
		{"delete", func(ctx context.Context) error { return fast.Delete(ctx, "k") }},
		{"open", func(ctx context.Context) error {
			r, err := fast.Open(ctx, "k")
			if err == nil {
				_, err = io.ReadAll(r)
				r.Close()
			}
			return err
		}},
	}
}

// expectClass runs every op and checks its error's class; attempts, when
// not nil, counts the requests (or connections) the endpoint saw, and each
// op must have made between minA and maxA of them.
func expectClass(t *testing.T, ops []storeOp, want error, attempts func() int64, minA, maxA int64) {
	t.Helper()
	for _, op := range ops {
		var before int64
		if attempts != nil {
			before = attempts()
		}
		err := op.call(context.Background())
		t.Logf("%s: %v", op.name, err)
		switch {
		case err == nil:
			t.Errorf("%s: succeeded", op.name)
		case want != nil && !errors.Is(err, want):
			t.Errorf("%s: %v\nwant class %v", op.name, err, want)
		case want == nil && (errors.Is(err, objstore.ErrFatal) || errors.Is(err, objstore.ErrUnreachable)):
			t.Errorf("%s: %v\nwant neither fatal nor unreachable", op.name, err)
		case want == objstore.ErrFatal && errors.Is(err, objstore.ErrUnreachable),
			want == objstore.ErrUnreachable && errors.Is(err, objstore.ErrFatal):
			t.Errorf("%s: %v is both fatal and unreachable", op.name, err)
		}
		if attempts != nil {
			if n := attempts() - before; n < minA || n > maxA {
				t.Errorf("%s: %d attempts, want %d..%d", op.name, n, minA, maxA)
			}
		}
	}
}

// TestClassifyRealFailures produces each failure for real and checks the
// class every store call reports, and how often it tried.
func TestClassifyRealFailures(t *testing.T) {
	e := kmtest.S3(t)
	e.SetAWSEnv(t)
	ctx := context.Background()
	seed, err := New(ctx, Options{URL: "s3://" + e.Bucket, EndpointURL: e.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seed.Put(ctx, "k", strings.NewReader("x"), 1, objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	proxied := func(t *testing.T, f faultproxy.Faults) *faultproxy.Proxy {
		p, err := faultproxy.New(e.Endpoint, f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}

	t.Run("closed port", func(t *testing.T) {
		port, err := testenv.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		expectClass(t, allOps(t, fmt.Sprintf("http://127.0.0.1:%d", port), e.Bucket, Options{}), objstore.ErrUnreachable, nil, 0, 0)
	})
	t.Run("proxy down", func(t *testing.T) {
		p := proxied(t, faultproxy.Faults{})
		if err := p.SetMode(faultproxy.Down); err != nil {
			t.Fatal(err)
		}
		expectClass(t, allOps(t, p.URL, e.Bucket, Options{}), objstore.ErrUnreachable, nil, 0, 0)
	})
	t.Run("reset", func(t *testing.T) {
		// Every request read, then the connection reset without an answer:
		// at most 3 attempts each, though MaxAttempts is 10.
		p := proxied(t, faultproxy.Faults{Reset: 1})
		expectClass(t, allOps(t, p.URL, e.Bucket, Options{MaxAttempts: 10}), objstore.ErrUnreachable, p.Requests.Load, 1, maxConnAttempts)
	})
	t.Run("forbidden", func(t *testing.T) {
		t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-"+e.SecretKey)
		p := proxied(t, faultproxy.Faults{})
		expectClass(t, allOps(t, p.URL, e.Bucket, Options{}), objstore.ErrFatal, p.Requests.Load, 1, 1)
	})
	t.Run("missing bucket", func(t *testing.T) {
		p := proxied(t, faultproxy.Faults{})
		ops := allOps(t, p.URL, "no-such-"+e.Bucket, Options{})
		var withBody []storeOp
		for _, op := range ops {
			// A HEAD answer has no body to say which is missing.
			if op.name != "head" {
				withBody = append(withBody, op)
			}
		}
		expectClass(t, withBody, objstore.ErrFatal, p.Requests.Load, 1, 1)
		for _, op := range []storeOp{ops[0], ops[1], ops[2]} { // check and both puts
			if err := op.call(ctx); !errors.Is(err, objstore.ErrNotExist) {
				t.Errorf("%s: %v, want also ErrNotExist", op.name, err)
			}
		}
	})
	t.Run("slowdown", func(t *testing.T) {
		// Throttling is retried and paced, never an outage.
		p := proxied(t, faultproxy.Faults{SlowDown: 1})
		expectClass(t, allOps(t, p.URL, e.Bucket, Options{MaxAttempts: 2})[1:4], nil, p.Requests.Load, 2, 2)
	})
	t.Run("internal error", func(t *testing.T) {
		// 500s keep the full MaxAttempts (more than the connection cap).
		p := proxied(t, faultproxy.Faults{Internal: 1})
		expectClass(t, allOps(t, p.URL, e.Bucket, Options{MaxAttempts: 4})[1:4], nil, p.Requests.Load, 4, 4)
	})
	t.Run("bad digest", func(t *testing.T) {
		// A body that does not match its checksum fails that object only.
		for _, disable := range []bool{false, true} {
			st, err := New(ctx, Options{URL: "s3://" + e.Bucket, EndpointURL: e.Endpoint, DisableFastPut: disable})
			if err != nil {
				t.Fatal(err)
			}
			_, err = st.Put(ctx, "bad", strings.NewReader("abc"), 3, objstore.PutOptions{CRC32C: "AAAAAA=="})
			if err == nil || errors.Is(err, objstore.ErrFatal) || errors.Is(err, objstore.ErrUnreachable) {
				t.Errorf("put with a wrong checksum (sdk=%v): %v, want a per-object error", disable, err)
			}
			t.Logf("bad digest (sdk=%v): %v", disable, err)
		}
	})
	t.Run("local read error", func(t *testing.T) {
		// The source file times out (a soft NFS mount): not an outage of
		// the endpoint.
		for _, disable := range []bool{false, true} {
			st, err := New(ctx, Options{URL: "s3://" + e.Bucket, EndpointURL: e.Endpoint, DisableFastPut: disable, MaxAttempts: 2})
			if err != nil {
				t.Fatal(err)
			}
			_, err = st.Put(ctx, "nfs", failingBody{}, 100, objstore.PutOptions{CRC32C: "AAAAAA=="})
			if err == nil || errors.Is(err, objstore.ErrFatal) || errors.Is(err, objstore.ErrUnreachable) {
				t.Errorf("put whose body fails to read (sdk=%v): %v, want a per-object error", disable, err)
			}
		}
	})
	t.Run("https to a plain endpoint", func(t *testing.T) {
		// A configuration error every request would repeat.
		p := proxied(t, faultproxy.Faults{})
		ops := allOps(t, strings.Replace(p.URL, "http://", "https://", 1), e.Bucket, Options{})
		expectClass(t, ops, objstore.ErrFatal, p.Requests.Load, 0, 0)
	})
	t.Run("unknown CA", func(t *testing.T) {
		// A TLS server whose certificate nobody trusts: fatal at the first
		// handshake, never retried.
		var conns atomic.Int64
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			t.Errorf("request %s reached the server", r.URL)
		}))
		srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // failed handshakes are the point
		srv.StartTLS()
		defer srv.Close()
		ops := allOps(t, srv.URL, e.Bucket, Options{})
		expectClass(t, ops, objstore.ErrFatal, conns.Load, 1, 1)
		var ua x509.UnknownAuthorityError
		if err := ops[1].call(ctx); !errors.As(err, &ua) || !strings.Contains(err.Error(), "--ca-bundle") {
			t.Errorf("put: %v, want x509.UnknownAuthorityError and a --ca-bundle hint", err)
		}
	})
}

// TestUntrustedTLSGateway: the TLS versitygw without its CA is fatal on
// both PUT paths and for Check, before and instead of ten retries.
func TestUntrustedTLSGateway(t *testing.T) {
	endpoint, _ := tlsGateway(t)
	expectClass(t, allOps(t, endpoint, "any-bucket", Options{}), objstore.ErrFatal, nil, 0, 0)
}

// failingBody fails every read like a file on a soft NFS mount that times out.
type failingBody struct{}

func (failingBody) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: "/mnt/receipts/x.json", Err: syscall.ETIMEDOUT}
}
func (failingBody) Seek(int64, int) (int64, error) { return 0, nil }
