package main

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/pgutil"
)

// silentServer accepts TCP connections and never answers: a database behind
// a half-dead load balancer or a stuck proxy.
func silentServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go io.Copy(io.Discard, c) //nolint:errcheck
		}
	}()
	return "postgres://postgres:pw@" + ln.Addr().String() + "/db?sslmode=disable"
}

// TestDBCommandsSilentServer: db copy, final-delta, import-delta and verify
// db against a server that never answers end after the connect timeout (no
// connect_timeout in the URL) with exit 1 and one line naming the side.
func TestDBCommandsSilentServer(t *testing.T) {
	old := pgutil.Defaults
	pgutil.Defaults.Connect = time.Second
	t.Cleanup(func() { pgutil.Defaults = old })
	e := kmtest.PG(t)
	silent := silentServer(t)
	ck := func() string { return filepath.Join(t.TempDir(), "ck.db") }
	for _, tc := range []struct {
		name string
		side string
		args []string
	}{
		{"copy source", "source", []string{"db", "copy", "--source", silent, "--target", e.TargetURL, "--checkpoint", ck()}},
		{"copy target", "target", []string{"db", "copy", "--source", e.SourceURL, "--target", silent, "--checkpoint", ck()}},
		{"final-delta source", "source", []string{"db", "final-delta", "--source", silent, "--target", e.TargetURL, "--checkpoint", ck()}},
		{"final-delta target", "target", []string{"db", "final-delta", "--source", e.SourceURL, "--target", silent, "--checkpoint", ck()}},
		{"import-delta target", "target", []string{"db", "import-delta", "--in", t.TempDir(), "--target", silent, "--checkpoint", ck()}},
		{"verify db target", "target", []string{"verify", "db", "--source", e.SourceURL, "--target", silent, "--checkpoint", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, _, errOut := runCLI(t, context.Background(), tc.args...)
			took := time.Since(start)
			t.Logf("exit %d after %s: %s", code, took.Round(time.Millisecond), strings.TrimSpace(errOut))
			if code != ExitCannotRun {
				t.Fatalf("exit %d, want %d", code, ExitCannotRun)
			}
			if took > 4*time.Second {
				t.Fatalf("took %s, want about the 1s connect timeout", took)
			}
			mustContain(t, errOut, tc.side+": cannot connect")
			mustContain(t, errOut, "connect timeout")
		})
	}
}
