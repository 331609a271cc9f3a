package s3store

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsretry "github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyauth "github.com/aws/smithy-go/auth"
	"github.com/aws/smithy-go/encoding/httpbinding"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/kwick/kwickmig/internal/objstore"
)

// fastPutter sends small PutObject requests without the SDK's middleware
// stack: the request is built by hand, signed by the SDK's own SigV4 signer
// with the SDK's own credentials, at the endpoint the SDK's own resolver
// chose. Per small file that saves ~500 allocations and a good part of the
// client's CPU, and the client's CPU is half of what bounds an upload of
// millions of receipts on a small bastion host. Anything unusual (S3
// Express, SigV4a, access points) keeps the SDK path: New only enables the
// fast path for a plain SigV4 endpoint.
//
// Retries follow the SDK's standard rules: 5xx, 429, throttling codes,
// RequestTimeout and connection errors are retried with exponential backoff
// and full jitter (throttles from a 1 s base, others from 50 ms, at most
// 20 s), up to maxAttempts; other 4xx are returned at once. Errors are
// classified like the SDK path's (classify.go): fatal ones (TLS
// verification, 400, 403, NoSuchBucket) end at the first attempt, and
// connection-level ones after maxConnAttempts.
type fastPutter struct {
	client interface {
		Do(*http.Request) (*http.Response, error)
	}
	creds       aws.CredentialsProvider
	signer      *v4.Signer
	region      string
	signingName string
	base        *url.URL // endpoint with the bucket (host or path), no trailing slash
	maxAttempts int
	pacer       *objstore.Pacer
	reqTimeout  time.Duration // base of each attempt's deadline (transport.go)
}

// newFastPutter returns nil when the endpoint needs more than plain SigV4.
func newFastPutter(ctx context.Context, client *s3.Client, bucket string, o Options, hc interface {
	Do(*http.Request) (*http.Response, error)
}) *fastPutter {
	opts := client.Options()
	ep, err := opts.EndpointResolverV2.ResolveEndpoint(ctx, s3.EndpointParameters{
		Bucket:         aws.String(bucket),
		Region:         aws.String(opts.Region),
		Endpoint:       opts.BaseEndpoint,
		ForcePathStyle: aws.Bool(opts.UsePathStyle),
		UseFIPS:        aws.Bool(opts.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled),
		UseDualStack:   aws.Bool(opts.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled),
		Accelerate:     aws.Bool(opts.UseAccelerate),
	})
	if err != nil {
		return nil
	}
	authOpts, ok := smithyauth.GetAuthOptions(&ep.Properties)
	// The endpoint rules name the scheme "sigv4" (or by its full ID);
	// sigv4a and sigv4-s3express stay on the SDK path.
	if !ok || len(authOpts) == 0 || (authOpts[0].SchemeID != "sigv4" && authOpts[0].SchemeID != smithyauth.SchemeIDSigV4) {
		return nil
	}
	name, _ := smithyhttp.GetSigV4SigningName(&authOpts[0].SignerProperties)
	region, _ := smithyhttp.GetSigV4SigningRegion(&authOpts[0].SignerProperties)
	if name == "" {
		name = "s3"
	}
	if region == "" {
		region = opts.Region
	}
	base := ep.URI
	base.Path = strings.TrimSuffix(base.Path, "/")
	base.RawPath = ""
	return &fastPutter{
		client:      hc,
		creds:       opts.Credentials,
		signer:      v4.NewSigner(func(so *v4.SignerOptions) { so.DisableURIPathEscaping = true }),
		region:      region,
		signingName: name,
		base:        &base,
		maxAttempts: o.MaxAttempts,
		pacer:       o.Pacer,
		reqTimeout:  o.RequestTimeout,
	}
}

// put uploads size bytes of body (from its current position) under the
// full key. Each attempt reads its own reader over the bytes (a section of
// body when it is an io.ReaderAt, else body rewound), and is detached from
// body before the next attempt starts and before put returns: net/http may
// go on reading a request body after RoundTrip returned (an early error
// answer, a write still in flight), and the caller reuses body's buffer
// as soon as put returns.
func (f *fastPutter) put(ctx context.Context, key string, body io.ReadSeeker, size int64, o objstore.PutOptions, sum string) (objstore.PutResult, error) {
	escaped := f.base.EscapedPath() + "/" + httpbinding.EscapePath(key, false)
	start, err := body.Seek(0, io.SeekCurrent)
	if err != nil {
		return objstore.PutResult{}, fmt.Errorf("put %s: %w", key, err)
	}
	ra, _ := body.(io.ReaderAt)
	var lastErr error
	for attempt := 1; ; attempt++ {
		if err := f.pacer.Wait(ctx); err != nil {
			return objstore.PutResult{}, err
		}
		var r io.Reader
		if ra != nil {
			r = io.NewSectionReader(ra, start, size)
		} else {
			// Safe: the previous attempt's reader is detached.
			if _, err := body.Seek(start, io.SeekStart); err != nil {
				return objstore.PutResult{}, fmt.Errorf("put %s: %w", key, err)
			}
			r = io.LimitReader(body, size)
		}
		ab := &attemptBody{r: r}
		f.pacer.Started()
		etag, retry, throttle, err := f.once(ctx, escaped, ab, size, o, sum)
		f.pacer.Finished()
		ab.detach()
		if err == nil {
			f.pacer.Succeeded()
			return objstore.PutResult{ETag: etag, CRC32C: sum}, nil
		}
		if throttle {
			f.pacer.Throttled()
		}
		lastErr = err
		if ctx.Err() != nil {
			return objstore.PutResult{}, ctx.Err()
		}
		class := classOf(err)
		if !retry || class == classFatal || attempt >= f.maxAttempts || (class == classUnreachable && attempt >= maxConnAttempts) {
			if attempt > 1 {
				lastErr = &awsretry.MaxAttemptsError{Attempt: attempt, Err: lastErr}
			}
			return objstore.PutResult{}, classify("put "+key, lastErr)
		}
		base := 50 * time.Millisecond
		if throttle {
			base = time.Second
		}
		d := min(base<<min(attempt-1, 10), 20*time.Second)
		t := time.NewTimer(rand.N(d) + time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return objstore.PutResult{}, ctx.Err()
		case <-t.C:
		}
	}
}

// once sends one attempt, within the attempt's deadline, and classifies its
// failure.
func (f *fastPutter) once(ctx context.Context, escapedPath string, body io.ReadCloser, size int64, o objstore.PutOptions, sum string) (etag string, retry, throttle bool, err error) {
	limit := attemptTimeout(f.reqTimeout, size)
	actx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	stalled := false
	if size > stallWatchMin {
		sr := newStallReader(body, size)
		wctx, stopWatch := watchStall(actx, sr, f.reqTimeout)
		etag, retry, throttle, err = f.send(wctx, escapedPath, sr, size, o, sum)
		stalled = stopWatch()
	} else {
		etag, retry, throttle, err = f.send(actx, escapedPath, body, size, o, sum)
	}
	if err != nil && stalled && ctx.Err() == nil {
		return "", true, false, &attemptTimeoutError{limit: f.reqTimeout, size: size, stalled: true}
	}
	if err != nil && actx.Err() != nil && ctx.Err() == nil {
		return "", true, false, &attemptTimeoutError{limit: limit, size: size}
	}
	return etag, retry, throttle, err
}

func (f *fastPutter) send(ctx context.Context, escapedPath string, body io.ReadCloser, size int64, o objstore.PutOptions, sum string) (etag string, retry, throttle bool, err error) {
	u := *f.base
	u.Opaque = "//" + u.Host + escapedPath
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), nil)
	if err != nil {
		return "", false, false, err
	}
	req.URL.Opaque = u.Opaque
	// An explicit length (never chunked encoding), and NoBody for empty
	// objects, which net/http would otherwise treat as "length unknown".
	req.ContentLength = size
	if size > 0 {
		req.Body = body
	} else {
		req.Body = http.NoBody
	}
	h := req.Header
	if o.ContentType != "" {
		h.Set("Content-Type", o.ContentType)
	}
	for k, v := range o.Metadata {
		h.Set("X-Amz-Meta-"+k, v)
	}
	h.Set("X-Amz-Checksum-Crc32c", sum)
	h.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	creds, err := f.creds.Retrieve(ctx)
	if err != nil {
		return "", false, false, fmt.Errorf("credentials: %w", err)
	}
	if err := f.signer.SignHTTP(ctx, creds, req, "UNSIGNED-PAYLOAD", f.signingName, f.region, time.Now().UTC()); err != nil {
		return "", false, false, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "", false, false, ctx.Err()
		}
		return "", true, false, err // connection reset, timeout, refused: retry
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		_, _ = io.Copy(io.Discard, resp.Body)
		return strings.Trim(resp.Header.Get("ETag"), `"`), false, false, nil
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	_ = xml.Unmarshal(data, &e)
	if e.Code == "" {
		e.Code = http.StatusText(resp.StatusCode)
	}
	apiErr := &PutError{Status: resp.StatusCode, Code: e.Code, Message: e.Message, RequestID: resp.Header.Get("X-Amz-Request-Id")}
	switch {
	case throttleCodes[e.Code] || resp.StatusCode == http.StatusTooManyRequests:
		return "", true, true, apiErr
	case resp.StatusCode >= 500, e.Code == "RequestTimeout", e.Code == "RequestTimeoutException":
		return "", true, false, apiErr
	}
	return "", false, false, apiErr
}

var throttleCodes = map[string]bool{
	"SlowDown": true, "Throttling": true, "ThrottlingException": true, "RequestLimitExceeded": true,
	"TooManyRequestsException": true, "RequestThrottled": true, "BandwidthLimitExceeded": true,
}

// PutError is an S3 error response to a PutObject sent by the fast path.
type PutError struct {
	Status    int
	Code      string
	Message   string
	RequestID string
}

func (e *PutError) Error() string {
	msg := "StatusCode: " + strconv.Itoa(e.Status) + ", " + e.Code
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.RequestID != "" {
		msg += " (request id " + e.RequestID + ")"
	}
	return msg
}

// HTTPStatusCode and ErrorCode let classify read the fast path's errors
// like the SDK's.
func (e *PutError) HTTPStatusCode() int { return e.Status }

// ErrorCode returns the S3 error code (e.g. SlowDown, NoSuchBucket).
func (e *PutError) ErrorCode() string { return e.Code }

// Is makes a 404 (NoSuchBucket) match objstore.ErrNotExist.
func (e *PutError) Is(target error) bool {
	return target == objstore.ErrNotExist && e.Status == http.StatusNotFound
}

// attemptBody is one attempt's request body. detach (or the transport's
// Close) cuts it from the caller's bytes under a lock, so once detach
// returns no read of them is running or can start: the transport then sees
// an error instead, and the connection is not reused.
type attemptBody struct {
	mu sync.Mutex
	r  io.Reader // nil once detached
}

var errBodyDetached = errors.New("request body released: the attempt is over")

func (b *attemptBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.r == nil {
		return 0, errBodyDetached
	}
	return b.r.Read(p)
}

// Close is the transport's "done with the body".
func (b *attemptBody) Close() error {
	b.detach()
	return nil
}

func (b *attemptBody) detach() {
	b.mu.Lock()
	b.r = nil
	b.mu.Unlock()
}
