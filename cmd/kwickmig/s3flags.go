package main

import (
	"context"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/objstore/s3store"
)

// s3Options are the flags of every command that talks to S3.
type s3Options struct {
	EndpointURL string
	Region      string
	Profile     string
	CABundle    string
	ClientCert  string
	ClientKey   string
	MaxRPS      float64
	// RequestTimeout: response-header timeout and base of each attempt's
	// deadline (s3store.Options.RequestTimeout).
	RequestTimeout time.Duration
}

func (o *s3Options) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.EndpointURL, "endpoint-url", "", "S3-compatible endpoint URL (also AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL); uses path-style addressing")
	f.StringVar(&o.Region, "region", "", "AWS region (default: from the AWS configuration, else us-east-1)")
	f.StringVar(&o.Profile, "profile", "", "AWS shared-config profile")
	f.StringVar(&o.CABundle, "ca-bundle", "", "PEM file of CA certificates to trust for the endpoint")
	f.StringVar(&o.ClientCert, "client-cert", "", "PEM client certificate for endpoints that require mutual TLS")
	f.StringVar(&o.ClientKey, "client-key", "", "PEM private key for --client-cert")
	f.DurationVar(&o.RequestTimeout, "request-timeout", s3store.DefaultRequestTimeout,
		"how long to wait for the endpoint to answer a request (an attempt may also take 10s to connect and 4s per MiB of body it sends)")
	f.Float64Var(&o.MaxRPS, "max-rps", 0, "cap on S3 requests per second (0: none; throttling lowers the rate adaptively anyway)")
}

// open builds the store for url (s3://bucket/prefix) and proves, with one
// cheap request, that the bucket exists and the credentials work.
// multipart is the size above which uploads use multipart (0: default).
func (o *s3Options) open(ctx context.Context, url string, concurrency int, multipart int64, pacer *objstore.Pacer) (*s3store.Store, error) {
	if (o.ClientCert == "") != (o.ClientKey == "") {
		return nil, usageErrorf("--client-cert and --client-key go together")
	}
	if o.RequestTimeout <= 0 {
		return nil, usageErrorf("--request-timeout %s: want a positive duration such as 60s", o.RequestTimeout)
	}
	st, err := s3store.New(ctx, s3store.Options{
		URL: url, EndpointURL: o.EndpointURL, Region: o.Region, Profile: o.Profile,
		CABundle: o.CABundle, ClientCert: o.ClientCert, ClientKey: o.ClientKey,
		RequestTimeout: o.RequestTimeout,
		Concurrency:    concurrency, Pacer: pacer, MultipartThreshold: multipart, PartSize: min(max(multipart, 5<<20), 16<<20),
		// Escape hatch: send every PutObject through the SDK's full stack.
		DisableFastPut: os.Getenv("KWICKMIG_DISABLE_FAST_PUT") != "",
	})
	if err != nil {
		return nil, err
	}
	if err := st.Check(ctx); err != nil {
		return nil, err
	}
	return st, nil
}
