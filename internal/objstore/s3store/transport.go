package s3store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	awsmiddle "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Every wait on the endpoint has an end:
//
//   - connecting (TCP) gives up after connectTimeout, the TLS handshake after
//     tlsHandshakeTimeout;
//   - once a request is sent, the response headers must arrive within
//     Options.RequestTimeout (--request-timeout, default 60s);
//   - each attempt as a whole (connect, send the body, read the answer) must
//     end within attemptTimeout: connectTimeout + RequestTimeout + body size
//     ÷ minThroughput, i.e. 70s + 4s per MiB at the defaults (a 16 MiB part:
//     134s; a 64 MiB PutObject: 326s). A body that cannot be sent at
//     256 KiB/s is treated like an endpoint that does not answer;
//   - a GetObject body (Open) fails when no byte arrives for RequestTimeout.
//
// A silent endpoint therefore fails each call after at most
// maxConnAttempts attempts of about RequestTimeout each (see classify.go).
const (
	connectTimeout      = 10 * time.Second
	tlsHandshakeTimeout = 10 * time.Second
	completeTimeout     = 10 * time.Minute // CompleteMultipartUpload, see deadlineMiddleware
)

// minThroughput is the slowest body upload an attempt tolerates, in bytes
// per second, and attemptSlack the time for connecting (variables so tests
// can shorten the deadline).
var (
	minThroughput int64 = 256 << 10
	attemptSlack        = connectTimeout
)

// attemptTimeout is the deadline of one attempt that sends size body bytes.
// It is longer than the response-header timeout, which names the cause
// better when it fires first.
func attemptTimeout(requestTimeout time.Duration, size int64) time.Duration {
	body := time.Duration(float64(max(size, 0)) / float64(minThroughput) * float64(time.Second))
	return (attemptSlack + requestTimeout + body).Round(time.Millisecond)
}

// attemptTimeoutError: one attempt did not end within its deadline. It is a
// connection-level failure (retryable; ErrUnreachable once attempts run
// out), not a cancellation: it must not unwrap to the SDK's CanceledError,
// which the SDK never retries.
type attemptTimeoutError struct {
	limit   time.Duration
	size    int64
	stalled bool // the stall watchdog ended it (stall.go)
}

func (e *attemptTimeoutError) Error() string {
	if e.stalled {
		return fmt.Sprintf("the endpoint took no body bytes for %s (request timeout) with %d bytes to send", e.limit, e.size)
	}
	if e.size > 0 {
		return fmt.Sprintf("attempt not done within %s (connect + request timeout + %d body bytes at %d KiB/s)", e.limit, e.size, minThroughput>>10)
	}
	return fmt.Sprintf("attempt not done within %s (connect + request timeout)", e.limit)
}
func (e *attemptTimeoutError) Timeout() bool         { return true }
func (e *attemptTimeoutError) Temporary() bool       { return true }
func (e *attemptTimeoutError) ConnectionError() bool { return true }

// buildHTTPClient returns the SDK's buildable client (so AWS_CA_BUNDLE and
// the shared config's ca_bundle keep working) with a pool sized for the
// concurrency, the timeouts above and the --ca-bundle / mutual-TLS settings
// applied. The SDK derives copies from it: use the S3 client's
// Options().HTTPClient, never this value, to send requests.
func buildHTTPClient(o Options) (config.HTTPClient, error) {
	if o.HTTPClient != nil {
		return o.HTTPClient, nil
	}
	var tlsErr error
	c := awshttp.NewBuildableClient().WithDialerOptions(func(d *net.Dialer) {
		d.Timeout = connectTimeout
	}).WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns = o.Concurrency * 2
		t.MaxIdleConnsPerHost = o.Concurrency * 2
		t.IdleConnTimeout = 90 * time.Second
		t.TLSHandshakeTimeout = tlsHandshakeTimeout
		t.ResponseHeaderTimeout = o.RequestTimeout
		if o.CABundle == "" && o.ClientCert == "" {
			return
		}
		if t.TLSClientConfig == nil {
			t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		if o.CABundle != "" {
			pem, err := os.ReadFile(o.CABundle)
			if err != nil {
				tlsErr = fmt.Errorf("--ca-bundle: %w", err)
				return
			}
			pool, err := x509.SystemCertPool()
			if err != nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				tlsErr = fmt.Errorf("--ca-bundle %s: no PEM certificates found", o.CABundle)
				return
			}
			t.TLSClientConfig.RootCAs = pool
		}
		if o.ClientCert != "" || o.ClientKey != "" {
			cert, err := tls.LoadX509KeyPair(o.ClientCert, o.ClientKey)
			if err != nil {
				tlsErr = fmt.Errorf("--client-cert/--client-key: %w", err)
				return
			}
			t.TLSClientConfig.Certificates = []tls.Certificate{cert}
		}
	})
	if tlsErr != nil {
		return nil, tlsErr
	}
	return c, nil
}

// deadlineMiddleware gives every attempt of every operation but GetObject
// its attemptTimeout. It runs per attempt (last in the Finalize step, after
// the retry loop and the pacer) and covers deserialization, so a response
// whose body stalls fails too. GetObject's body is read by the caller after
// the call returns: openWatchdog bounds it instead.
func deadlineMiddleware(requestTimeout time.Duration) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("kwickmigAttemptDeadline",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				op := awsmiddle.GetOperationName(ctx)
				if op == "GetObject" {
					return next.HandleFinalize(ctx, in)
				}
				var size int64
				if req, ok := in.Request.(*smithyhttp.Request); ok {
					if n, ok, err := req.StreamLength(); err == nil && ok {
						size = n
					}
				}
				limit := attemptTimeout(requestTimeout, size)
				if op == "CompleteMultipartUpload" {
					// S3 answers 200 at once, then may take minutes to
					// assemble a large object (sending whitespace
					// meanwhile); a silent endpoint still fails at the
					// response-header timeout.
					limit = max(limit, completeTimeout)
				}
				actx, cancel := context.WithTimeout(ctx, limit)
				defer cancel()
				out, md, err := next.HandleFinalize(actx, in)
				if err != nil && actx.Err() != nil && ctx.Err() == nil {
					err = &attemptTimeoutError{limit: limit, size: size}
				}
				return out, md, err
			}), middleware.After)
	}
}

// openWatchdog makes GetObject's body fail when no byte arrives for
// requestTimeout (the response headers are bounded by the transport's
// ResponseHeaderTimeout). It wraps the call's context so the watchdog can
// cancel the body read; the context lives until the body is closed.
func openWatchdog(requestTimeout time.Duration) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("kwickmigBodyWatchdog",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if awsmiddle.GetOperationName(ctx) != "GetObject" {
					return next.HandleInitialize(ctx, in)
				}
				cctx, cancel := context.WithCancel(ctx)
				out, md, err := next.HandleInitialize(cctx, in)
				res, ok := out.Result.(*s3.GetObjectOutput)
				if err != nil || !ok || res.Body == nil {
					cancel()
					return out, md, err
				}
				res.Body = newIdleBody(res.Body, requestTimeout, cancel)
				return out, md, err
			}), middleware.Before)
	}
}

// idleBody fails a read that waits more than limit for data.
type idleBody struct {
	rc     io.ReadCloser
	limit  time.Duration
	cancel context.CancelFunc
	timer  *time.Timer
	fired  atomic.Bool
}

func newIdleBody(rc io.ReadCloser, limit time.Duration, cancel context.CancelFunc) *idleBody {
	b := &idleBody{rc: rc, limit: limit, cancel: cancel}
	b.timer = time.AfterFunc(time.Hour, func() {
		b.fired.Store(true)
		cancel()
	})
	b.timer.Stop()
	return b
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.limit)
	n, err := b.rc.Read(p)
	b.timer.Stop()
	if err != nil && err != io.EOF {
		if b.fired.Load() {
			err = &attemptTimeoutError{limit: b.limit}
		}
		err = classifyRead(err)
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.cancel()
	return err
}
