// Package kmtest holds test helpers shared by kwickmig's packages: access to
// the real servers started by tools/testenv (`make test`), with a fresh bucket
// or fresh databases per test.
//
// Tests that need a server call S3(t) or PG(t). Without the harness they skip
// with a message naming the missing variable; when KWICKMIG_TEST_DISALLOW_SKIP
// is set (make test sets it) a missing server fails the test instead, so the
// required suites can never skip quietly.
package kmtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
)

// Env returns the value of an environment variable the harness sets, skipping
// (or failing, under KWICKMIG_TEST_DISALLOW_SKIP) when it is absent.
func Env(tb testing.TB, name string) string {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv("KWICKMIG_TEST_DISALLOW_SKIP") != "" {
			tb.Fatalf("environment variable %s not set (run through `make test`)", name)
		}
		tb.Skipf("environment variable %s not set (run through `make test`)", name)
	}
	return v
}

// RandName returns a short random lower-case name with the given prefix.
func RandName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// S3Env describes the harness's S3 server and a bucket created for one test.
type S3Env struct {
	Endpoint  string
	AccessKey string
	SecretKey string
	Region    string
	Bucket    string
	Dir       string // versitygw's POSIX root: Dir/Bucket/key holds the object
	Client    *s3.Client
}

// SetAWSEnv points the AWS SDK's default credential chain at the test server
// for the rest of the test (t.Setenv), as a user's environment would.
func (e *S3Env) SetAWSEnv(t *testing.T) {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", e.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", e.SecretKey)
	t.Setenv("AWS_REGION", e.Region)
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// S3 returns the harness's S3 server with a fresh, empty bucket.
func S3(tb testing.TB) *S3Env {
	tb.Helper()
	e := &S3Env{
		Endpoint:  Env(tb, "KWICKMIG_TEST_S3_ENDPOINT"),
		AccessKey: Env(tb, "KWICKMIG_TEST_S3_ACCESS_KEY"),
		SecretKey: Env(tb, "KWICKMIG_TEST_S3_SECRET_KEY"),
		Region:    os.Getenv("KWICKMIG_TEST_S3_REGION"),
		Dir:       os.Getenv("KWICKMIG_TEST_S3_DIR"),
		Bucket:    RandName("test-"),
	}
	if e.Region == "" {
		e.Region = "us-east-1"
	}
	e.Client = s3.New(s3.Options{
		Region:       e.Region,
		BaseEndpoint: aws.String(e.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(e.AccessKey, e.SecretKey, ""),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.Client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &e.Bucket}); err != nil {
		tb.Fatalf("create bucket %s: %v", e.Bucket, err)
	}
	return e
}

// PGEnv is a pair of fresh databases, one on the source cluster and one on
// the target cluster, dropped when the test ends.
type PGEnv struct {
	SourceURL string
	TargetURL string
	DBName    string
}

// PG creates a fresh database with the same random name on both clusters.
func PG(tb testing.TB) *PGEnv {
	tb.Helper()
	src := Env(tb, "KWICKMIG_TEST_PG_SOURCE")
	dst := Env(tb, "KWICKMIG_TEST_PG_TARGET")
	name := RandName("t_")
	e := &PGEnv{DBName: name, SourceURL: withDB(src, name), TargetURL: withDB(dst, name)}
	for _, admin := range []string{src, dst} {
		mustExec(tb, admin, "CREATE DATABASE "+name)
		admin := admin
		tb.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if c, err := pgx.Connect(ctx, admin); err == nil {
				_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
				c.Close(ctx)
			}
		})
	}
	return e
}

// Exec runs SQL statements on the database at url, failing the test on error.
func Exec(tb testing.TB, url string, sql ...string) {
	tb.Helper()
	for _, s := range sql {
		mustExec(tb, url, s)
	}
}

func mustExec(tb testing.TB, url, sql string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql); err != nil {
		tb.Fatalf("exec %q: %v", sql, err)
	}
}

// withDB replaces the database name of a postgres:// URL.
func withDB(url, db string) string {
	i := strings.LastIndex(url, "/")
	rest := ""
	if q := strings.Index(url[i:], "?"); q >= 0 {
		rest = url[i+q:]
	}
	return url[:i+1] + db + rest
}
