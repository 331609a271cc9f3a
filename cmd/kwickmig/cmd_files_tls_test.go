package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/testenv"
)

// TestFilesSyncOverTLS runs files sync and verify files --checksum as a user
// would against a TLS-only S3 endpoint with a private CA:
//   - without the CA, the run stops before any upload with one line naming
//     the certificate problem, exit 1, quickly (no retries);
//   - with the CA only in AWS_CA_BUNDLE, small files (fast PUT path) and a
//     multipart file upload, and verify --checksum compares both like with
//     like (the multipart object carries a full-object CRC32C).
func TestFilesSyncOverTLS(t *testing.T) {
	kmtest.Env(t, "KWICKMIG_TEST_S3_ENDPOINT") // the harness built versitygw
	dir := t.TempDir()
	ca, err := testenv.NewTestCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := testenv.StartVersitygwWith(ctx, dir, testenv.VersitygwOptions{CertFile: ca.CertFile, KeyFile: ca.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": srv.SecretKey, "AWS_REGION": srv.Region,
		"AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull, "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_CA_BUNDLE": "",
	} {
		t.Setenv(k, v)
	}
	// The bucket, made by a client that trusts the CA.
	pem, _ := os.ReadFile(ca.CAFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := s3.New(s3.Options{
		Region: srv.Region, BaseEndpoint: aws.String(srv.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
		HTTPClient:  &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
	})
	bucket := kmtest.RandName("tls-")
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src")
	for i := range 50 {
		writeFile(t, src, fmt.Sprintf("s%d/r%02d.json", i%3, i), []byte(fmt.Sprint(i)))
	}
	big := make([]byte, 11<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	writeFile(t, src, "big/scan.pdf", big)
	cp := filepath.Join(dir, "kwickmig.db")
	args := []string{"files", "sync", "--src", src, "--dst", "s3://" + bucket + "/r", "--endpoint-url", srv.Endpoint,
		"--checkpoint", cp, "--multipart-threshold", "5242880"}

	start := time.Now()
	code, out, errOut := runCLI(t, context.Background(), args...)
	if code != 1 || !strings.Contains(errOut, "certificate") || time.Since(start) > 10*time.Second {
		t.Fatalf("without the CA: exit %d after %s, want 1 quickly naming the certificate\n%s%s", code, time.Since(start), out, errOut)
	}
	if n := strings.Count(strings.TrimSpace(errOut), "\n"); n != 0 {
		t.Fatalf("without the CA: %d stderr lines, want one:\n%s", n+1, errOut)
	}

	t.Setenv("AWS_CA_BUNDLE", ca.CAFile)
	if code, out, errOut := runCLI(t, context.Background(), args...); code != 0 || !strings.Contains(out, "51 (") {
		t.Fatalf("with AWS_CA_BUNDLE: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, context.Background(), "verify", "files", "--src", src, "--dst", "s3://"+bucket+"/r",
		"--endpoint-url", srv.Endpoint, "--checkpoint", cp, "--checksum")
	if code != 0 {
		t.Fatalf("verify files --checksum over TLS: exit %d\n%s%s", code, out, errOut)
	}
	// The multipart object's stored checksum is the file's whole CRC32C.
	h, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String("r/big/scan.pdf"), ChecksumMode: "ENABLED"})
	if err != nil {
		t.Fatal(err)
	}
	if c := aws.ToString(h.ChecksumCRC32C); c == "" || strings.Contains(c, "-") {
		t.Fatalf("multipart object checksum %q, want a full-object CRC32C", c)
	}
}
