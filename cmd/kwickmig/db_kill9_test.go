package main

import (
	"context"
	"io"
	"net"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/kmtest"
)

// slowProxy forwards TCP connections to addr, pausing after every chunk
// from the server, so a copy runs long enough to be killed in the middle.
func slowProxy(t *testing.T, addr string, pause time.Duration) string {
	t.Helper()
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
			go func() {
				s, err := net.Dial("tcp", addr)
				if err != nil {
					c.Close()
					return
				}
				go func() { _, _ = io.Copy(s, c); s.Close() }()
				buf := make([]byte, 32<<10)
				for {
					n, err := s.Read(buf)
					if n > 0 {
						if _, werr := c.Write(buf[:n]); werr != nil {
							break
						}
						time.Sleep(pause)
					}
					if err != nil {
						break
					}
				}
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// TestDBCopyResumeKill9: the real binary copies a split table through a
// slow link and is killed with SIGKILL half-way. The source then updates a
// third of the rows (they move to other pages), deletes and inserts some.
// db copy --resume, final-delta and verify db all exit 0: no row is
// duplicated (the primary key builds) or lost.
func TestDBCopyResumeKill9(t *testing.T) {
	bin := kwickmigBinary(t)
	e := kmtest.PG(t)
	kmtest.Exec(t, e.SourceURL, `CREATE TABLE big (id int PRIMARY KEY, v text, pad text);
		INSERT INTO big SELECT i, 'v' || i, repeat('p', 80) FROM generate_series(1, 60000) i`)
	dir := t.TempDir()
	cp := filepath.Join(dir, "cp.db")
	run := func(args ...string) (int, string) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, string(out)
	}
	if code, out := run("db", "capture", "install", "--source", e.SourceURL, "--checkpoint", cp); code != 0 {
		t.Fatalf("capture install: exit %d\n%s", code, out)
	}
	u, _ := url.Parse(e.SourceURL)
	u.Host = slowProxy(t, u.Host, 3*time.Millisecond)
	copyArgs := []string{"db", "copy", "--source", u.String(), "--target", e.TargetURL, "--checkpoint", cp,
		"--split-larger-than", "256kB", "--jobs", "1"}
	cmd := exec.Command(bin, copyArgs...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	killed := false
	for ctx.Err() == nil && !killed {
		time.Sleep(20 * time.Millisecond)
		c, err := pgxConnect(e.TargetURL)
		if err != nil {
			continue
		}
		var n int64
		if err := c.QueryRow(ctx, "SELECT count(*) FROM big").Scan(&n); err == nil && n > 10000 && n < 40000 {
			_ = cmd.Process.Kill()
			killed = true
			t.Logf("killed with %d of 60000 rows loaded", n)
		}
		c.Close(context.Background())
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatalf("the copy was not caught half-way (too fast or failed)")
	}
	kmtest.Exec(t, e.SourceURL, `UPDATE big SET v = v || 'u' WHERE id % 3 = 0;
		DELETE FROM big WHERE id % 100 = 1; INSERT INTO big SELECT i, 'new', 'n' FROM generate_series(60001, 60500) i`)

	copyArgs[3] = e.SourceURL
	if code, out := run(append(copyArgs, "--resume")...); code != 0 {
		t.Fatalf("db copy --resume: exit %d\n%s", code, out)
	}
	if n := queryN(t, e.TargetURL, "SELECT count(*) - count(DISTINCT id) FROM big"); n != 0 {
		t.Fatalf("%d duplicate rows after the resume", n)
	}
	kmtest.Exec(t, e.SourceURL, `UPDATE big SET v = 'late' WHERE id % 7 = 0; DELETE FROM big WHERE id % 50 = 2`)
	if code, out := run("db", "final-delta", "--source", e.SourceURL, "--target", e.TargetURL, "--checkpoint", cp); code != 0 {
		t.Fatalf("final-delta: exit %d\n%s", code, out)
	}
	code, out := run("verify", "db", "--source", e.SourceURL, "--target", e.TargetURL, "--checkpoint", "")
	if code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("verify db: exit %d\n%s", code, out)
	}
	if n := queryN(t, e.TargetURL, "SELECT count(*) FROM big"); n != queryN(t, e.SourceURL, "SELECT count(*) FROM big") || n < 58000 {
		t.Fatalf("target rows %d", n)
	}
}
