// Package pgutil holds the PostgreSQL connection code every kwickmig database
// command shares: building a connection config from a URL or keyword string
// (PG* variables and ~/.pgpass apply, as with psql), naming the side
// (source/target) in errors, and keeping passwords out of every message.
package pgutil

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Side names which database an error is about.
type Side string

const (
	Source Side = "source"
	Target Side = "target"
)

// ParseConfig parses a libpq URL or keyword/value string. Errors name the side
// and never contain the password.
// A string with aws_iam_auth=true authenticates each new connection with a
// fresh RDS IAM token (iamauth.go).
func ParseConfig(side Side, connString string) (*pgx.ConnConfig, error) {
	clean, iam, err := stripIAM(side, connString)
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(clean)
	if err != nil {
		return nil, fmt.Errorf("%s: invalid connection string %s: %s", side, Redact(connString), RedactErr(err, clean))
	}
	if err := applyTimeouts(side, cfg); err != nil {
		return nil, err
	}
	if iam {
		if err := useIAM(side, cfg); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// Connect opens one connection. The error is one line naming the side, host,
// database and cause, with any password removed.
func Connect(ctx context.Context, side Side, connString string) (*pgx.Conn, error) {
	cfg, err := ParseConfig(side, connString)
	if err != nil {
		return nil, err
	}
	return ConnectConfig(ctx, side, cfg)
}

// ConnectConfig opens one connection from a parsed config.
func ConnectConfig(ctx context.Context, side Side, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		why := ""
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			why = fmt.Sprintf(" (no answer within %s, the connect timeout)", cfg.ConnectTimeout)
		}
		return nil, fmt.Errorf("%s: cannot connect to %s:%d database %q as %q%s: %s",
			side, cfg.Host, cfg.Port, cfg.Database, cfg.User, why, oneLine(redactPassword(err.Error(), cfg.Password)))
	}
	return conn, nil
}

var kvPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// references maps a connection string resolved from a secret reference to
// that reference (ssm:NAME, secretsmanager:NAME).
var references sync.Map

// RegisterReference makes Redact(connString) return ref: reports, records
// and messages then name where the connection string came from, not its
// value.
func RegisterReference(connString, ref string) { references.Store(connString, ref) }

// Redact returns the connection string with its password replaced by
// "xxxxx", or the secret reference it was resolved from.
func Redact(connString string) string {
	if ref, ok := references.Load(connString); ok {
		return ref.(string)
	}
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		if u, err := url.Parse(connString); err == nil {
			if _, ok := u.User.Password(); ok {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			}
			q := u.Query()
			if q.Has("password") {
				q.Set("password", "xxxxx")
				u.RawQuery = q.Encode()
			}
			return u.String()
		}
		// Unparseable URL: drop everything between "//" and "@".
		if at := strings.LastIndex(connString, "@"); at > 0 {
			return connString[:strings.Index(connString, "//")+2] + "xxxxx" + connString[at:]
		}
		return connString
	}
	return kvPassword.ReplaceAllString(connString, "${1}xxxxx")
}

// RedactErr returns err's text with the connection string's password removed.
func RedactErr(err error, connString string) string {
	msg := err.Error()
	if cfg, perr := pgconn.ParseConfig(connString); perr == nil && cfg.Password != "" {
		msg = redactPassword(msg, cfg.Password)
	}
	msg = strings.ReplaceAll(msg, connString, Redact(connString))
	return oneLine(msg)
}

func redactPassword(msg, password string) string {
	if password == "" {
		return msg
	}
	msg = strings.ReplaceAll(msg, password, "xxxxx")
	return strings.ReplaceAll(msg, url.QueryEscape(password), "xxxxx")
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// QuoteIdent quotes an SQL identifier ("Order Lines" → "\"Order Lines\"").
func QuoteIdent(name string) string {
	return pgx.Identifier{name}.Sanitize()
}

// QualifiedName quotes schema.table.
func QualifiedName(schema, table string) string {
	return pgx.Identifier{schema, table}.Sanitize()
}
