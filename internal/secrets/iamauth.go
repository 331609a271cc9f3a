package secrets

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// TokenLifetime is how long an RDS IAM authentication token is accepted
// (fixed by RDS). A token is only checked when a connection starts, so a
// connection outlives it; every new connection needs a fresh one.
const TokenLifetime = 15 * time.Minute

// emptyPayloadHash is the SHA-256 of an empty body (the token signs a GET).
const emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// BuildAuthToken returns an RDS IAM authentication token for user at
// host:port, signed at now. It is feature/rds/auth.BuildAuthToken with the
// clock as a parameter, so tests can check a token byte for byte; a test
// checks the two agree.
func BuildAuthToken(ctx context.Context, host string, port uint16, region, user string, creds aws.CredentialsProvider, now time.Time) (string, error) {
	if creds == nil {
		return "", fmt.Errorf("no AWS credentials")
	}
	endpoint := net.JoinHostPort(host, strconv.Itoa(int(port)))
	req, err := http.NewRequest("GET", "https://"+endpoint, nil)
	if err != nil {
		return "", err
	}
	q := url.Values{}
	q.Set("Action", "connect")
	q.Set("DBUser", user)
	q.Set("X-Amz-Expires", strconv.Itoa(int(TokenLifetime/time.Second)))
	req.URL.RawQuery = q.Encode()
	c, err := creds.Retrieve(ctx)
	if err != nil {
		return "", fmt.Errorf("AWS credentials: %w", err)
	}
	signed, _, err := v4.NewSigner().PresignHTTP(ctx, c, req, emptyPayloadHash, "rds-db", region, now.UTC())
	if err != nil {
		return "", err
	}
	return signed[len("https://"):], nil
}

// TokenSource makes RDS IAM tokens with the SDK's default configuration
// (o's region and profile), loaded once on first use.
type TokenSource struct {
	o   Options
	now func() time.Time

	mu  sync.Mutex
	cfg *aws.Config
}

// NewTokenSource returns a TokenSource for o.
func NewTokenSource(o Options) *TokenSource { return &TokenSource{o: o, now: time.Now} }

// Token returns a fresh token for user at host:port.
func (s *TokenSource) Token(ctx context.Context, host string, port uint16, user string) (string, error) {
	cfg, err := s.config(ctx)
	if err != nil {
		return "", err
	}
	if cfg.Region == "" {
		return "", fmt.Errorf("aws_iam_auth: no AWS region (give --region or set AWS_REGION)")
	}
	tok, err := BuildAuthToken(ctx, host, port, cfg.Region, user, cfg.Credentials, s.now())
	if err != nil {
		return "", fmt.Errorf("aws_iam_auth: %s", oneLine(err.Error()))
	}
	return tok, nil
}

func (s *TokenSource) config(ctx context.Context) (aws.Config, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg != nil {
		return *s.cfg, nil
	}
	timeout := s.o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cfg, err := LoadConfig(ctx, s.o)
	if err != nil {
		return aws.Config{}, fmt.Errorf("aws_iam_auth: AWS configuration: %s", oneLine(err.Error()))
	}
	// The credentials provider is cached by the SDK (refreshed before it
	// expires); keeping the config keeps that cache.
	s.cfg = &cfg
	return cfg, nil
}
