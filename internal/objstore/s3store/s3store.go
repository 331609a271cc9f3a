// Package s3store implements objstore.Store on Amazon S3 (and S3-compatible
// endpoints) with aws-sdk-go-v2. It is the only package that imports the S3
// client; multipart uploads are streamed by multipart.go.
package s3store

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"

	"github.com/kwick/kwickmig/internal/objstore"
)

// Options configure a Store. Zero values get the defaults in fill().
type Options struct {
	URL         string // s3://bucket[/prefix]
	EndpointURL string // S3-compatible endpoint; AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL also work
	Region      string
	Profile     string
	CABundle    string // PEM file of extra trusted CAs
	ClientCert  string // PEM client certificate for mutual TLS
	ClientKey   string
	// Concurrency sizes the HTTP connection pool (one idle connection per
	// worker, so no request waits for a new TCP/TLS handshake).
	Concurrency int
	// MultipartThreshold: objects larger than this use multipart upload.
	MultipartThreshold int64
	PartSize           int64
	MaxAttempts        int
	// RequestTimeout bounds the wait for response headers once a request is
	// sent, and is the base of each attempt's deadline (see transport.go).
	// Default 60s (--request-timeout).
	RequestTimeout time.Duration
	// Pacer paces request attempts and counts throttles; may be nil.
	Pacer *objstore.Pacer
	// HTTPClient overrides the transport (tests).
	HTTPClient *http.Client
	// DisableFastPut sends every PutObject through the SDK's middleware
	// stack (see fastput.go); for comparison and as an escape hatch.
	DisableFastPut bool
}

func (o *Options) fill() {
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.MultipartThreshold <= 0 {
		o.MultipartThreshold = 64 << 20
	}
	if o.PartSize <= 0 {
		o.PartSize = 16 << 20
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
}

// DefaultRequestTimeout is Options.RequestTimeout's default.
const DefaultRequestTimeout = 60 * time.Second

// Store is an S3 bucket plus key prefix.
type Store struct {
	client *s3.Client
	fast   *fastPutter // nil: every PUT goes through the SDK
	bucket string
	prefix string // "" or ends with "/"
	opts   Options
}

var _ objstore.Store = (*Store)(nil)

// ParseURL splits s3://bucket/prefix into bucket and a prefix that is empty
// or ends with "/".
func ParseURL(raw string) (bucket, prefix string, err error) {
	if !strings.HasPrefix(raw, "s3://") {
		return "", "", fmt.Errorf("destination %q: want s3://BUCKET[/PREFIX]", raw)
	}
	rest := strings.TrimPrefix(raw, "s3://")
	bucket, prefix, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("destination %q: no bucket name", raw)
	}
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return bucket, prefix, nil
}

// New builds a Store from the SDK's default credential chain (environment,
// shared config and --profile, SSO, IMDS/ECS roles) and the options.
func New(ctx context.Context, o Options) (*Store, error) {
	o.fill()
	bucket, prefix, err := ParseURL(o.URL)
	if err != nil {
		return nil, err
	}
	var loadOpts []func(*config.LoadOptions) error
	if o.Profile != "" {
		loadOpts = append(loadOpts, config.WithSharedConfigProfile(o.Profile))
	}
	if o.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(o.Region))
	}
	httpClient, err := buildHTTPClient(o)
	if err != nil {
		return nil, err
	}
	loadOpts = append(loadOpts,
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer {
			// The SDK's default retry quota fails requests after a burst of
			// throttles; kwickmig paces instead, so the quota is off.
			return classRetryer{retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = o.MaxAttempts
				so.MaxBackoff = 20 * time.Second
				so.RateLimiter = ratelimit.None
			})}
		}),
		// kwickmig supplies CRC32C itself; don't let the SDK stream bodies
		// through aws-chunked trailers the server must decode.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
		// The SDK's own warnings (e.g. "falling back to IMDSv1" on a host
		// without an instance role) go unformatted to stderr, between
		// kwickmig's log lines and before its one-line error, which names
		// the credentials problem anyway.
		config.WithLogger(logging.Nop{}),
	)
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	endpoint := o.EndpointURL
	if endpoint != "" {
		if u, err := url.Parse(endpoint); err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("--endpoint-url %q: want a URL like https://host:port", endpoint)
		}
	}
	customEndpoint := endpoint != "" || cfg.BaseEndpoint != nil ||
		os.Getenv("AWS_ENDPOINT_URL_S3") != "" || os.Getenv("AWS_ENDPOINT_URL") != ""
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if endpoint != "" {
			so.BaseEndpoint = aws.String(endpoint)
		}
		// S3-compatible servers rarely support virtual-hosted buckets.
		so.UsePathStyle = customEndpoint
		// The body's integrity is carried by x-amz-checksum-crc32c (and by TLS
		// on real S3), so signing does not hash every body a second time.
		so.APIOptions = append(so.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware,
			deadlineMiddleware(o.RequestTimeout), openWatchdog(o.RequestTimeout))
		if o.Pacer != nil {
			so.APIOptions = append(so.APIOptions, pacerMiddleware(o.Pacer))
		}
	})
	s := &Store{client: client, bucket: bucket, prefix: prefix, opts: o}
	if !o.DisableFastPut {
		// Exactly the client the SDK sends with: LoadDefaultConfig applies
		// AWS_CA_BUNDLE (and the shared config's ca_bundle) to a copy of
		// httpClient, and s3.New copies it once more, so only the client's
		// own options carry every TLS and proxy setting.
		s.fast = newFastPutter(ctx, client, bucket, o, client.Options().HTTPClient)
	}
	return s, nil
}

// pacerMiddleware runs once per attempt (after the retry middleware): it
// waits for the pacer before sending and reports throttles and successes.
func pacerMiddleware(p *objstore.Pacer) func(*middleware.Stack) error {
	throttle := retry.IsErrorThrottles(retry.DefaultThrottles)
	return func(stack *middleware.Stack) error {
		return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("kwickmigPacer",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				if err := p.Wait(ctx); err != nil {
					// A cancellation, so the SDK neither retries it nor is
					// it taken for a timeout of the endpoint.
					return middleware.FinalizeOutput{}, middleware.Metadata{}, &aws.RequestCanceledError{Err: err}
				}
				p.Started()
				out, md, err := next.HandleFinalize(ctx, in)
				p.Finished()
				if err != nil {
					if throttle.IsErrorThrottle(err) == aws.TrueTernary {
						p.Throttled()
					}
				} else {
					p.Succeeded()
				}
				return out, md, err
			}), "Retry", middleware.After)
	}
}

// Bucket returns the bucket name; Prefix the key prefix ("" or ending in "/").
func (s *Store) Bucket() string { return s.bucket }

// Prefix returns the key prefix.
func (s *Store) Prefix() string { return s.prefix }

// errNotExist wraps SDK not-found errors so callers can match objstore.ErrNotExist.
type notExistError struct {
	what string
	err  error
}

func (e *notExistError) Error() string {
	if e.what == "" {
		return e.err.Error()
	}
	return e.what + ": " + e.err.Error()
}
func (e *notExistError) Unwrap() []error {
	return []error{objstore.ErrNotExist, e.err}
}

// wrap names the operation and key, maps 404s to objstore.ErrNotExist and
// marks the error's class (classify.go): every SDK operation's error goes
// through here.
func wrap(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
		err = &notExistError{err: err}
	}
	return classify(op+" "+key, err)
}
