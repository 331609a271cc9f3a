package secrets

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/rds/auth"
	"github.com/aws/smithy-go"
)

var fixedCreds = credentials.NewStaticCredentialsProvider("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "")

func TestBuildAuthTokenShape(t *testing.T) {
	at := time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)
	tok, err := BuildAuthToken(context.Background(), "aurora.cluster-abc.eu-north-1.rds.amazonaws.com", 5432, "eu-north-1", "kwickmig", fixedCreds, at)
	if err != nil {
		t.Fatal(err)
	}
	prefix := "aurora.cluster-abc.eu-north-1.rds.amazonaws.com:5432?"
	if !strings.HasPrefix(tok, prefix) {
		t.Fatalf("token %q does not start with %q", tok, prefix)
	}
	q, err := url.ParseQuery(strings.TrimPrefix(tok, prefix))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"Action":              "connect",
		"DBUser":              "kwickmig",
		"X-Amz-Algorithm":     "AWS4-HMAC-SHA256",
		"X-Amz-Credential":    "AKIAIOSFODNN7EXAMPLE/20261129/eu-north-1/rds-db/aws4_request",
		"X-Amz-Date":          "20261129T030000Z",
		"X-Amz-Expires":       "900",
		"X-Amz-SignedHeaders": "host",
	} {
		if got := q.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if len(q.Get("X-Amz-Signature")) != 64 {
		t.Errorf("signature %q: want 64 hex digits", q.Get("X-Amz-Signature"))
	}
	// (host:port?… as feature/rds/auth writes it; TestBuildAuthTokenMatchesSDK.)
	// Deterministic: the same inputs sign the same token; another minute
	// signs another.
	again, _ := BuildAuthToken(context.Background(), "aurora.cluster-abc.eu-north-1.rds.amazonaws.com", 5432, "eu-north-1", "kwickmig", fixedCreds, at)
	later, _ := BuildAuthToken(context.Background(), "aurora.cluster-abc.eu-north-1.rds.amazonaws.com", 5432, "eu-north-1", "kwickmig", fixedCreds, at.Add(time.Minute))
	if again != tok || later == tok {
		t.Fatalf("tokens not deterministic by clock: same=%v differs=%v", again == tok, later != tok)
	}
}

// The clocked copy must sign exactly what the SDK's feature/rds/auth does.
func TestBuildAuthTokenMatchesSDK(t *testing.T) {
	for range 3 {
		now := time.Now()
		sdk, err := auth.BuildAuthToken(context.Background(), "db.example:5432", "eu-north-1", "kwickmig", fixedCreds)
		if err != nil {
			t.Fatal(err)
		}
		ours, err := BuildAuthToken(context.Background(), "db.example", 5432, "eu-north-1", "kwickmig", fixedCreds, now)
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().Truncate(time.Second).Equal(now.Truncate(time.Second)) {
			if ours != sdk {
				t.Fatalf("ours %q\nsdk  %q", ours, sdk)
			}
			return
		}
	}
	t.Fatal("the second changed three times while signing")
}

func TestTokenSourceNeedsRegion(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	t.Setenv("AWS_ACCESS_KEY_ID", "a")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "b")
	_, err := NewTokenSource(Options{}).Token(context.Background(), "h", 5432, "u")
	if err == nil || !strings.Contains(err.Error(), "no AWS region") {
		t.Fatalf("err = %v", err)
	}
	tok, err := NewTokenSource(Options{Region: "eu-north-1"}).Token(context.Background(), "h", 5432, "u")
	if err != nil || !strings.HasPrefix(tok, "h:5432?Action=connect&DBUser=u&") {
		t.Fatalf("tok %q, err %v", tok, err)
	}
}

// describe's wording for what moto does not enforce (IAM policies): the
// service's AccessDenied answer becomes "access denied: …".
func TestDescribeAccessDenied(t *testing.T) {
	err := &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "User: arn:aws:iam::1:user/x is not authorized to perform: ssm:GetParameter"}
	got := describe(context.Background(), fmt.Errorf("operation error SSM: GetParameter: %w", err), "eu-north-1", "https://ssm.eu-north-1.amazonaws.com", time.Second)
	if want := "access denied: User: arn:aws:iam::1:user/x is not authorized to perform: ssm:GetParameter"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
