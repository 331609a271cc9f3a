package s3store

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/testenv"
)

// tlsGateway starts a versitygw that speaks only TLS, with a certificate
// from a fresh test CA, and points the SDK's environment at it. It returns
// the endpoint and the CA's PEM file; nothing trusts that CA yet.
func tlsGateway(t *testing.T) (endpoint, caFile string) {
	t.Helper()
	// The harness builds versitygw; without it, skip (or fail) like every
	// other server test.
	kmtest.Env(t, "KWICKMIG_TEST_S3_ENDPOINT")
	dir := t.TempDir()
	ca, err := testenv.NewTestCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := testenv.StartVersitygwWith(ctx, dir, testenv.VersitygwOptions{CertFile: ca.CertFile, KeyFile: ca.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", srv.Region)
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CA_BUNDLE", "")
	return srv.Endpoint, ca.CAFile
}

// TestStoreTLS runs the store contract over TLS with the CA given only
// through AWS_CA_BUNDLE, on both PUT paths and for small and multipart
// objects. Before the fix the fast path ignored AWS_CA_BUNDLE: HeadBucket
// worked and every PUT failed with "certificate signed by unknown authority".
func TestStoreTLS(t *testing.T) {
	endpoint, caFile := tlsGateway(t)
	t.Setenv("AWS_CA_BUNDLE", caFile)
	ctx := context.Background()
	for i, mode := range putModes {
		t.Run(mode.name, func(t *testing.T) {
			bucket := kmtest.RandName("tls-")
			admin, err := New(ctx, Options{URL: "s3://" + bucket, EndpointURL: endpoint})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := admin.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
				t.Fatalf("create bucket over TLS (run %d): %v", i, err)
			}
			conformance(t, Options{EndpointURL: endpoint, DisableFastPut: mode.disable}, bucket)
		})
	}
	// --ca-bundle alone (no AWS_CA_BUNDLE) reaches the fast path too.
	t.Run("ca-bundle", func(t *testing.T) {
		t.Setenv("AWS_CA_BUNDLE", "")
		bucket := kmtest.RandName("tls-")
		st, err := New(ctx, Options{URL: "s3://" + bucket, EndpointURL: endpoint, CABundle: caFile})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
			t.Fatal(err)
		}
		if st.fast == nil {
			t.Fatal("fast path disabled")
		}
		if _, err := st.Put(ctx, "k", strings.NewReader("body"), 4, objstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	})
}
