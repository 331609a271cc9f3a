package pgutil

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/secrets"
)

func TestIAMAuthParameter(t *testing.T) {
	for _, c := range []struct {
		conn, wantErr string
		iam           bool
	}{
		{"postgres://u@h/db?sslmode=require&aws_iam_auth=true", "", true},
		{"postgres://u@h/db?sslmode=verify-full&aws_iam_auth=1", "", true},
		{"host=h user=u sslmode=verify-ca aws_iam_auth=true dbname=db", "", true},
		{"host=h user=u sslmode=require aws_iam_auth='on'", "", true},
		{"postgres://u@h/db?sslmode=require&aws_iam_auth=false", "", false},
		{"postgres://u@h/db?sslmode=disable&aws_iam_auth=true", "source: aws_iam_auth=true needs TLS", false},
		{"postgres://u@h/db?sslmode=prefer&aws_iam_auth=true", "source: aws_iam_auth=true needs TLS", false},
		{"postgres://u@h/db?aws_iam_auth=true", "source: aws_iam_auth=true needs TLS", false}, // libpq's default is prefer
		{"host=h user=u sslmode=allow aws_iam_auth=true", "source: aws_iam_auth=true needs TLS", false},
		{"postgres://u@h/db?sslmode=require&aws_iam_auth=maybe", `source: invalid connection string: aws_iam_auth="maybe"`, false},
	} {
		t.Setenv("PGSSLMODE", "")
		cfg, err := ParseConfig(Source, c.conn)
		if c.wantErr != "" {
			if err == nil || !strings.HasPrefix(err.Error(), c.wantErr) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%s: err = %v, want one line starting %q", c.conn, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.conn, err)
			continue
		}
		if _, ok := cfg.RuntimeParams["aws_iam_auth"]; ok {
			t.Errorf("%s: aws_iam_auth reached the server's settings", c.conn)
		}
		if (cfg.AfterNetConnect != nil) != c.iam {
			t.Errorf("%s: token hook installed = %v, want %v", c.conn, cfg.AfterNetConnect != nil, c.iam)
		}
		clean, _, err := stripIAM(Source, c.conn)
		if err != nil || strings.Contains(clean, "aws_iam_auth") {
			t.Errorf("%s: libpq would see %q (%v)", c.conn, clean, err)
		}
	}
}

// TestIAMAuthPerConnection connects over TLS to a real PostgreSQL whose role
// has, as its password, the token a fixed clock and fixed credentials
// produce: the server checks the password the hook supplies. Moving the
// clock 15 minutes makes the next connection (also one made from a live
// connection's config, as reconnects are) send a different token.
func TestIAMAuthPerConnection(t *testing.T) {
	admin := kmtest.Env(t, "KWICKMIG_TEST_PG_SOURCE")
	ca := kmtest.Env(t, "KWICKMIG_TEST_PG_SOURCE_CA")
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	creds := credentials.NewStaticCredentialsProvider("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "")
	clock := time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)
	var calls int
	var seen []string
	prev := SetIAMToken(func(ctx context.Context, host string, p uint16, user string) (string, error) {
		calls++
		tok, err := secrets.BuildAuthToken(ctx, host, p, "eu-north-1", user, creds, clock)
		seen = append(seen, tok)
		return tok, err
	})
	t.Cleanup(func() { SetIAMToken(prev) })
	token := func(role string, at time.Time) string {
		tok, err := secrets.BuildAuthToken(context.Background(), "127.0.0.1", uint16(port), "eu-north-1", role, creds, at)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	role := kmtest.RandName("iam_")
	kmtest.Exec(t, admin, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", role, token(role, clock)))
	t.Cleanup(func() { kmtest.Exec(t, admin, "DROP ROLE IF EXISTS "+role) })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=verify-full&sslrootcert=%s&aws_iam_auth=true", role, port, ca)
	c1, err := Connect(ctx, Source, conn)
	if err != nil {
		t.Fatalf("first connection: %v", err)
	}
	defer c1.Close(ctx)
	var ssl bool
	if err := c1.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil || !ssl {
		t.Fatalf("connection not over TLS (ssl=%v, err=%v)", ssl, err)
	}
	if calls != 1 || seen[0] != token(role, clock) {
		t.Fatalf("hook calls = %d; token sent is the expected one: %v", calls, len(seen) > 0 && seen[0] == token(role, clock))
	}

	// 15 minutes later the server still holds the old token as password:
	// the new connection's fresh token is refused, which proves it is new.
	clock = clock.Add(secrets.TokenLifetime)
	if _, err := Connect(ctx, Source, conn); err == nil || !strings.Contains(err.Error(), "password authentication failed") {
		t.Fatalf("connection with a fresh token against the old password: err = %v", err)
	}
	if calls != 2 || seen[1] == seen[0] {
		t.Fatalf("second connection: calls = %d, token changed = %v", calls, seen[1] != seen[0])
	}
	for _, tok := range seen {
		if strings.Contains(tok, "wJalrXUtnFEMI") {
			t.Fatal("the secret key is in the token")
		}
	}
	// The server moves on to the new token (as RDS would accept it): a
	// reconnect from the live connection's config gets it.
	kmtest.Exec(t, admin, fmt.Sprintf("ALTER ROLE %s PASSWORD '%s'", role, token(role, clock)))
	c2, err := pgx.ConnectConfig(ctx, c1.Config())
	if err != nil {
		t.Fatalf("reconnect from conn.Config(): %v", err)
	}
	c2.Close(ctx)
	if calls != 3 {
		t.Fatalf("reconnect did not ask for a token (calls = %d)", calls)
	}

	// libpq (pg_dump's path): the parameter is gone and the token is the
	// password.
	clean, tok, err := ForLibpq(ctx, Source, conn)
	if err != nil || strings.Contains(clean, "aws_iam_auth") || tok != token(role, clock) {
		t.Fatalf("ForLibpq: clean %q, token ok %v, err %v", clean, tok == token(role, clock), err)
	}
	psql, _ := filepath.Glob("/usr/lib/postgresql/*/bin/psql")
	if len(psql) == 0 {
		t.Fatal("psql not found")
	}
	cmd := exec.CommandContext(ctx, psql[len(psql)-1], "-XAtc", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", clean)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+tok)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "t" {
		t.Fatalf("psql with the token: %v: %s", err, out)
	}
}
