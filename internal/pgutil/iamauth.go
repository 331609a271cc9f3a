package pgutil

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TokenFunc makes the password of a new connection whose connection string
// sets aws_iam_auth=true: an RDS IAM authentication token for user at
// host:port.
type TokenFunc func(ctx context.Context, host string, port uint16, user string) (string, error)

var iamToken atomic.Pointer[TokenFunc]

// SetIAMToken installs the token maker every aws_iam_auth connection uses
// and returns the previous one. The command layer installs
// secrets.TokenSource.Token; tokens expire after 15 minutes, so each new
// connection asks for a fresh one.
func SetIAMToken(f TokenFunc) TokenFunc {
	var prev *TokenFunc
	if f == nil {
		prev = iamToken.Swap(nil)
	} else {
		prev = iamToken.Swap(&f)
	}
	if prev == nil {
		return nil
	}
	return *prev
}

// makeIAMToken calls the installed token maker.
func makeIAMToken(ctx context.Context, host string, port uint16, user string) (string, error) {
	f := iamToken.Load()
	if f == nil {
		return "", fmt.Errorf("aws_iam_auth: no token source configured")
	}
	return (*f)(ctx, host, port, user)
}

// pIAMAuth is kwickmig's own connection-string parameter; neither pgx nor
// libpq knows it, so it is taken out before either sees the string.
const pIAMAuth = "aws_iam_auth"

var kvIAMAuth = regexp.MustCompile(`(?i)(^|\s)aws_iam_auth\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)

// stripIAM removes aws_iam_auth from a URL or keyword/value connection
// string and reports whether it asked for IAM authentication.
func stripIAM(side Side, connString string) (string, bool, error) {
	var value string
	clean := connString
	if isURL(connString) {
		u, err := url.Parse(connString)
		if err != nil {
			return connString, false, nil // pgx reports the parse error
		}
		q := u.Query()
		if !q.Has(pIAMAuth) {
			return connString, false, nil
		}
		value = q.Get(pIAMAuth)
		q.Del(pIAMAuth)
		u.RawQuery = q.Encode()
		clean = u.String()
	} else {
		m := kvIAMAuth.FindStringSubmatch(connString)
		if m == nil {
			return connString, false, nil
		}
		value = strings.Trim(m[2], "'")
		clean = strings.TrimSpace(kvIAMAuth.ReplaceAllString(connString, "$1"))
	}
	switch strings.ToLower(value) {
	case "true", "1", "yes", "on":
		return clean, true, nil
	case "false", "0", "no", "off":
		return clean, false, nil
	}
	return "", false, fmt.Errorf("%s: invalid connection string: %s=%q: want true or false", side, pIAMAuth, value)
}

// useIAM makes every connection made from cfg (and from copies of it, such
// as conn.Config() used to reconnect) authenticate with a fresh IAM token.
// The hook runs after TCP and TLS are up, on the connection's own copy of
// the config, just before the startup message: the token is as fresh as it
// can be and never shared between connections.
func useIAM(side Side, cfg *pgx.ConnConfig) error {
	if !tlsOnly(&cfg.Config) {
		return fmt.Errorf("%s: aws_iam_auth=true needs TLS: set sslmode=require, verify-ca or verify-full (the token is a password)", side)
	}
	prev := cfg.AfterNetConnect
	cfg.AfterNetConnect = func(ctx context.Context, c *pgconn.Config, nc net.Conn) (net.Conn, error) {
		tok, err := makeIAMToken(ctx, c.Host, c.Port, c.User)
		if err != nil {
			return nil, err
		}
		c.Password = tok
		if prev != nil {
			return prev(ctx, c, nc)
		}
		return nc, nil
	}
	return nil
}

// tlsOnly reports whether every attempt the config makes uses TLS
// (sslmode require, verify-ca or verify-full; prefer and allow may fall
// back to plain TCP).
func tlsOnly(c *pgconn.Config) bool {
	if c.TLSConfig == nil {
		return false
	}
	for _, fb := range c.Fallbacks {
		if fb.TLSConfig == nil {
			return false
		}
	}
	return true
}

// ForLibpq prepares a connection string for a libpq client (pg_dump): it
// removes aws_iam_auth and, when that was set, returns a fresh IAM token to
// pass as PGPASSWORD (empty otherwise).
func ForLibpq(ctx context.Context, side Side, connString string) (clean, token string, err error) {
	clean, iam, err := stripIAM(side, connString)
	if err != nil || !iam {
		return clean, "", err
	}
	cfg, err := ParseConfig(side, connString)
	if err != nil {
		return "", "", err
	}
	token, err = makeIAMToken(ctx, cfg.Host, cfg.Port, cfg.User)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", side, err)
	}
	return clean, token, nil
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}
