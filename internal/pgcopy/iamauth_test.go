package pgcopy

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/pgutil"
	"github.com/kwick/kwickmig/internal/secrets"
)

// TestCopyIAMAuth runs a whole db copy (coordinator, COPY workers, pg_dump,
// index builds, ANALYZE) with aws_iam_auth=true on both sides, over TLS,
// against servers whose migrating role's password is the token a fixed
// clock and fixed credentials produce: every connection, and pg_dump
// through PGPASSWORD, must present it.
func TestCopyIAMAuth(t *testing.T) {
	e := kmtest.PG(t)
	srcCA := kmtest.Env(t, "KWICKMIG_TEST_PG_SOURCE_CA")
	dstCA := kmtest.Env(t, "KWICKMIG_TEST_PG_TARGET_CA")
	creds := credentials.NewStaticCredentialsProvider("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "")
	clock := time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)
	var calls atomic.Int64
	prev := pgutil.SetIAMToken(func(ctx context.Context, host string, port uint16, user string) (string, error) {
		calls.Add(1)
		return secrets.BuildAuthToken(ctx, host, port, "eu-north-1", user, creds, clock)
	})
	t.Cleanup(func() { pgutil.SetIAMToken(prev) })
	role := kmtest.RandName("iam_")
	iamURL := func(admin, ca string) string {
		u, err := url.Parse(admin)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(u.Port())
		tok, err := secrets.BuildAuthToken(context.Background(), "127.0.0.1", uint16(port), "eu-north-1", role, creds, clock)
		if err != nil {
			t.Fatal(err)
		}
		kmtest.Exec(t, admin, fmt.Sprintf("CREATE ROLE %s SUPERUSER LOGIN PASSWORD '%s'", role, tok))
		t.Cleanup(func() {
			kmtest.Exec(t, admin, "REASSIGN OWNED BY "+role+" TO postgres", "DROP OWNED BY "+role, "DROP ROLE "+role)
		})
		return fmt.Sprintf("postgres://%s@127.0.0.1:%d%s?sslmode=verify-full&sslrootcert=%s&aws_iam_auth=true", role, port, u.Path, ca)
	}
	kmtest.Exec(t, e.SourceURL, "CREATE TABLE receipts (id int PRIMARY KEY, file_key text NOT NULL UNIQUE)",
		"INSERT INTO receipts SELECT g, 'k'||g FROM generate_series(1, 2000) g")
	opts := testOptions(t, e)
	opts.SourceURL, opts.TargetURL = iamURL(e.SourceURL, srcCA), iamURL(e.TargetURL, dstCA)
	t.Setenv("PGPASSWORD", "") // no fallback password for pg_dump
	res, err := Copy(context.Background(), opts)
	if err != nil {
		t.Fatalf("copy: %v", err)
	}
	if len(res.Failures) > 0 {
		t.Fatalf("failures: %v", res.Failures)
	}
	sameTables(t, e, 2000, "public.receipts")
	// Coordinator, 2 workers, target, index builds, pg_dump's sections…
	t.Logf("%d connections authenticated with a token", calls.Load())
	if n := calls.Load(); n < 5 {
		t.Fatalf("only %d tokens made", n)
	}
}
