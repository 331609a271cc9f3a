package pgutil

import (
	"context"
	"strings"
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
)

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://u:s3cret@h:5432/db?sslmode=disable", "postgres://u:xxxxx@h:5432/db?sslmode=disable"},
		{"postgres://u@h/db", "postgres://u@h/db"},
		{"host=h user=u password=s3cret dbname=db", "host=h user=u password=xxxxx dbname=db"},
		{"host=h password='s3 cret' dbname=db", "host=h password=xxxxx dbname=db"},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q)=%q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestQuoteIdent(t *testing.T) {
	if got, want := QuoteIdent(`weird"name`), `"weird""name"`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if got, want := QualifiedName("public", "Order Lines"), `"public"."Order Lines"`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// TestConnectErrors checks that connection failures are one line, name the
// side, and never contain the password.
func TestConnectErrors(t *testing.T) {
	e := kmtest.PG(t)
	ctx := context.Background()
	good := e.SourceURL
	rest := good[len("postgres://"):]
	pw := rest[strings.Index(rest, ":")+1 : strings.Index(rest, "@")]
	for _, tc := range []struct {
		name, url string
		side      Side
		wantSub   string
	}{
		{"wrong password", strings.Replace(good, pw, "wrong-"+pw, 1), Source, "password authentication failed"},
		{"missing database", strings.Replace(good, e.DBName, "nosuchdb", 1), Target, "does not exist"},
		{"unreachable", "postgres://postgres:" + pw + "@127.0.0.1:1/db?connect_timeout=2", Source, "source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Connect(ctx, tc.side, tc.url)
			if err == nil {
				c.Close(ctx)
				t.Fatal("connected, want error")
			}
			msg := err.Error()
			if strings.Contains(msg, pw) {
				t.Fatalf("error contains the password: %s", msg)
			}
			if !strings.HasPrefix(msg, string(tc.side)+":") || !strings.Contains(msg, tc.wantSub) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q: want one line starting %q containing %q", msg, tc.side, tc.wantSub)
			}
		})
	}
	c, err := Connect(ctx, Source, good)
	if err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
}
