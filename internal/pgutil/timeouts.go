package pgutil

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"
)

// Timeouts bound every wait on a PostgreSQL connection, so that a server
// that accepts but never answers, or a peer whose packets silently vanish,
// ends the command with an error instead of a hang.
type Timeouts struct {
	// Connect bounds the whole connection set-up (TCP, TLS, startup,
	// authentication) when the connection string sets no connect_timeout.
	Connect time.Duration
	// KeepAliveIdle, KeepAliveInterval and KeepAliveCount: an idle
	// connection (a long query, a wait on a lock) is probed after Idle, then
	// every Interval; Count unanswered probes end it.
	KeepAliveIdle     time.Duration
	KeepAliveInterval time.Duration
	KeepAliveCount    int
	// UserTimeout (TCP_USER_TIMEOUT) ends a connection whose sent data stays
	// unacknowledged this long: a peer that vanished while we were writing.
	UserTimeout time.Duration
}

// Defaults are applied to every connection kwickmig makes (pgx sessions and
// pg_dump's libpq alike) unless the connection string sets the parameter
// itself. With a user timeout set, Linux also ends a connection whose
// keepalive probes go unanswered once UserTimeout has passed since the peer
// last answered, so a silent peer ends any wait, reading or writing, after
// about 45 s (measured: 47 s both ways). Tests shorten them.
var Defaults = Timeouts{
	Connect:           10 * time.Second,
	KeepAliveIdle:     15 * time.Second,
	KeepAliveInterval: 5 * time.Second,
	KeepAliveCount:    4,
	UserTimeout:       45 * time.Second,
}

// libpq parameters pgconn does not know: it would send them to the server as
// settings, which refuses them. They are taken out and honoured here.
const (
	pKeepalives         = "keepalives"
	pKeepalivesIdle     = "keepalives_idle"
	pKeepalivesInterval = "keepalives_interval"
	pKeepalivesCount    = "keepalives_count"
	pTCPUserTimeout     = "tcp_user_timeout"
)

// applyTimeouts sets the connect timeout (when the string has none) and a
// dialer with keepalives and a TCP user timeout on cfg.
func applyTimeouts(side Side, cfg *pgx.ConnConfig) error {
	t := Defaults
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = t.Connect
	}
	rp := cfg.RuntimeParams
	enabled := true
	for _, p := range []struct {
		name string
		set  func(int)
	}{
		{pKeepalives, func(v int) { enabled = v != 0 }},
		{pKeepalivesIdle, func(v int) { t.KeepAliveIdle = time.Duration(v) * time.Second }},
		{pKeepalivesInterval, func(v int) { t.KeepAliveInterval = time.Duration(v) * time.Second }},
		{pKeepalivesCount, func(v int) { t.KeepAliveCount = v }},
		{pTCPUserTimeout, func(v int) { t.UserTimeout = time.Duration(v) * time.Millisecond }},
	} {
		s, ok := rp[p.name]
		if !ok {
			continue
		}
		delete(rp, p.name)
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			return fmt.Errorf("%s: invalid connection string: %s=%q: want a non-negative integer", side, p.name, s)
		}
		p.set(v)
	}
	d := &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{Enable: enabled,
		Idle: t.KeepAliveIdle, Interval: t.KeepAliveInterval, Count: t.KeepAliveCount}}
	if !enabled {
		d.KeepAlive = -1
	}
	if ms := int(t.UserTimeout / time.Millisecond); ms > 0 {
		d.Control = func(network, _ string, c syscall.RawConn) error {
			if !strings.HasPrefix(network, "tcp") {
				return nil // Unix-domain sockets: no network to lose
			}
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, ms)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	cfg.DialFunc = d.DialContext
	return nil
}

// LibpqTimeouts returns connString with the default timeouts added for a
// libpq client (pg_dump) of major version libpqMajor: connect_timeout,
// keepalives and tcp_user_timeout (libpq 12 and later), each only where the
// string does not set it.
func LibpqTimeouts(connString string, libpqMajor int) string {
	t := Defaults
	params := []struct{ k, v string }{
		{"connect_timeout", strconv.Itoa(max(1, int(t.Connect/time.Second)))},
		{pKeepalives, "1"},
		{pKeepalivesIdle, strconv.Itoa(max(1, int(t.KeepAliveIdle/time.Second)))},
		{pKeepalivesInterval, strconv.Itoa(max(1, int(t.KeepAliveInterval/time.Second)))},
		{pKeepalivesCount, strconv.Itoa(max(1, t.KeepAliveCount))},
	}
	if libpqMajor >= 12 {
		params = append(params, struct{ k, v string }{pTCPUserTimeout, strconv.Itoa(int(t.UserTimeout / time.Millisecond))})
	}
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err != nil {
			return connString
		}
		q := u.Query()
		for _, p := range params {
			if p.k == "connect_timeout" && os.Getenv("PGCONNECT_TIMEOUT") != "" {
				continue
			}
			if !q.Has(p.k) {
				q.Set(p.k, p.v)
			}
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	out := connString
	for _, p := range params {
		if p.k == "connect_timeout" && os.Getenv("PGCONNECT_TIMEOUT") != "" {
			continue // libpq reads it when the string has none
		}
		if !kvHas(connString, p.k) {
			out += " " + p.k + "=" + p.v
		}
	}
	return strings.TrimSpace(out)
}

// kvHas reports whether a keyword/value connection string sets key.
func kvHas(s, key string) bool {
	return regexp.MustCompile(`(^|\s)` + regexp.QuoteMeta(key) + `\s*=`).MatchString(s)
}
