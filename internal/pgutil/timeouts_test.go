package pgutil

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"

	"github.com/kwick/kwickmig/internal/kmtest"
)

// shortTimeouts makes the test's dead-peer detection take seconds.
func shortTimeouts(t *testing.T) {
	old := Defaults
	Defaults = Timeouts{Connect: 2 * time.Second, KeepAliveIdle: time.Second, KeepAliveInterval: time.Second,
		KeepAliveCount: 2, UserTimeout: 3 * time.Second}
	t.Cleanup(func() { Defaults = old })
}

// TestConnectSilentServer: a server that accepts the TCP connection and
// never answers the startup message ends Connect after the connect timeout
// (the URL has none), with one line naming the side.
func TestConnectSilentServer(t *testing.T) {
	shortTimeouts(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			go io.Copy(io.Discard, c) //nolint:errcheck // read, never answer
		}
	}()
	start := time.Now()
	_, err = Connect(context.Background(), Target, fmt.Sprintf("postgres://u:secretpw@%s/db?sslmode=disable", ln.Addr()))
	took := time.Since(start)
	if err == nil {
		t.Fatal("connected to a silent server")
	}
	msg := err.Error()
	t.Logf("after %s: %s", took.Round(time.Millisecond), msg)
	if took > 5*time.Second || took < 1500*time.Millisecond {
		t.Fatalf("failed after %s, want about the 2s connect timeout", took)
	}
	if !strings.HasPrefix(msg, "target: ") || !strings.Contains(msg, "connect timeout") || strings.Contains(msg, "\n") || strings.Contains(msg, "secretpw") {
		t.Fatalf("error %q: want one line naming the target and the connect timeout, without the password", msg)
	}
}

// TestLibpqTimeouts: pg_dump's connection string gets the same limits,
// without overriding what the user set.
func TestLibpqTimeouts(t *testing.T) {
	t.Setenv("PGCONNECT_TIMEOUT", "")
	os.Unsetenv("PGCONNECT_TIMEOUT")
	got := LibpqTimeouts("postgres://u@h/db?sslmode=disable&keepalives_idle=7", 15)
	for _, want := range []string{"connect_timeout=10", "keepalives=1", "keepalives_idle=7", "keepalives_interval=5", "keepalives_count=4", "tcp_user_timeout=45000", "sslmode=disable"} {
		if !strings.Contains(got, want) {
			t.Errorf("%s: missing %s", got, want)
		}
	}
	if got := LibpqTimeouts("postgres://u@h/db", 11); strings.Contains(got, "tcp_user_timeout") {
		t.Errorf("libpq 11 has no tcp_user_timeout: %s", got)
	}
	got = LibpqTimeouts("host=h connect_timeout = 3 dbname=db", 15)
	if strings.Count(got, "connect_timeout") != 1 || !strings.Contains(got, "tcp_user_timeout=45000") {
		t.Errorf("keyword string: %s", got)
	}
	// pgx must not send libpq's keepalive parameters to the server as settings.
	cfg, err := ParseConfig(Source, "postgres://u@h/db?keepalives_idle=7&tcp_user_timeout=1000")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.RuntimeParams) != 0 || cfg.ConnectTimeout != Defaults.Connect {
		t.Errorf("runtime params %v, connect timeout %s", cfg.RuntimeParams, cfg.ConnectTimeout)
	}
}

// netns is a network namespace of its own, with a goroutine locked to an OS
// thread inside it: sockets created there live in the namespace, so its
// loopback can be silenced without touching anyone else's traffic.
type netns struct {
	name string
	do   chan func()
}

func newNetns(t *testing.T) *netns {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	n := &netns{name: fmt.Sprintf("kwm%d", os.Getpid()%100000), do: make(chan func())}
	ip(t, "netns", "add", n.name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.name).Run() }) //nolint:errcheck
	ip(t, "netns", "exec", n.name, "ip", "link", "set", "lo", "up")
	ready := make(chan error)
	go func() {
		// Never unlocked: the thread dies with this goroutine and cannot
		// carry the namespace into other code.
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + n.name)
		if err == nil {
			err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
			f.Close()
		}
		ready <- err
		if err != nil {
			return
		}
		for fn := range n.do {
			fn()
		}
	}()
	if err := <-ready; err != nil {
		t.Skipf("cannot enter a network namespace: %v", err)
	}
	t.Cleanup(func() { close(n.do) })
	return n
}

// run runs fn on the namespace's thread.
func (n *netns) run(fn func()) {
	done := make(chan struct{})
	n.do <- func() { fn(); close(done) }
	<-done
}

// silence drops every packet on the namespace's loopback: no reset, no FIN.
func (n *netns) silence(t *testing.T) {
	ip(t, "netns", "exec", n.name, "tc", "qdisc", "add", "dev", "lo", "root", "blackhole")
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Skipf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// TestSilentPeerMidQuery: the packets of an established connection are
// silently dropped while a query runs (the client waits to read) and while
// the client writes; keepalives and the TCP user timeout end each within
// seconds (the test's limits), not after the kernel's 2 hours / 15 minutes.
func TestSilentPeerMidQuery(t *testing.T) {
	e := kmtest.PG(t)
	for _, tc := range []struct {
		name  string
		write bool
	}{{"reading", false}, {"writing", true}} {
		t.Run(tc.name, func(t *testing.T) {
			shortTimeouts(t)
			ns := newNetns(t)
			u, err := url.Parse(e.SourceURL)
			if err != nil {
				t.Fatal(err)
			}
			var ln net.Listener
			ns.run(func() { ln, err = net.Listen("tcp", "127.0.0.1:0") })
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go proxy(ln, u.Host)
			viaProxy := *u
			viaProxy.Host = ln.Addr().String()
			ctx := context.Background()
			var pc *pgx.Conn
			ns.run(func() { pc, err = Connect(ctx, Source, viaProxy.String()) })
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close(context.Background())
			checkSockopt(t, pc.PgConn().Conn())
			if _, err := pc.Exec(ctx, "SELECT 1"); err != nil {
				t.Fatal(err)
			}
			ns.silence(t)
			start := time.Now()
			q := "SELECT pg_sleep(20)"
			if tc.write {
				q = "SELECT length($1)"
			}
			var args []any
			if tc.write {
				args = append(args, strings.Repeat("x", 4<<20)) // more than the socket buffers take
			}
			_, err = pc.Exec(ctx, q, args...)
			took := time.Since(start)
			t.Logf("after %s: %v", took.Round(time.Millisecond), err)
			if err == nil {
				t.Fatal("query through a silenced connection succeeded")
			}
			if took > 10*time.Second {
				t.Fatalf("silent peer noticed after %s, want within the test's ~3s limits", took)
			}
		})
	}
}

// proxy forwards each connection accepted on ln (inside the namespace) to
// addr (outside it).
func proxy(ln net.Listener, addr string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", addr)
		if err != nil {
			c.Close()
			continue
		}
		go func() { io.Copy(s, c); s.Close() }() //nolint:errcheck
		go func() { io.Copy(c, s); c.Close() }() //nolint:errcheck
	}
}

// checkSockopt asserts the socket carries the configured TCP user timeout
// and keepalive settings.
func checkSockopt(t *testing.T, c net.Conn) {
	t.Helper()
	sc, ok := c.(syscall.Conn)
	if !ok {
		t.Fatalf("%T is not a socket", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ut, idle, ka int
	var gerr error
	rc.Control(func(fd uintptr) { //nolint:errcheck
		if ut, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT); gerr != nil {
			return
		}
		if idle, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPIDLE); gerr != nil {
			return
		}
		ka, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE)
	})
	if gerr != nil {
		t.Fatal(gerr)
	}
	if ut != int(Defaults.UserTimeout/time.Millisecond) || idle != int(Defaults.KeepAliveIdle/time.Second) || ka != 1 {
		t.Fatalf("socket: TCP_USER_TIMEOUT %d ms, TCP_KEEPIDLE %d s, SO_KEEPALIVE %d; want %s, %s, on",
			ut, idle, ka, Defaults.UserTimeout, Defaults.KeepAliveIdle)
	}
}
