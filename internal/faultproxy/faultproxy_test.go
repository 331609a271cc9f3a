package faultproxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestModes switches a running proxy through Normal, Silent, Down and back,
// checking what a client sees in each mode on the same URL.
func TestModes(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write([]byte("ok"))
	}))
	defer backend.Close()
	p, err := New(backend.URL, Faults{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	client := &http.Client{Timeout: 300 * time.Millisecond}
	get := func() error {
		resp, err := client.Get(p.URL + "/x")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "ok" {
			t.Fatalf("body %q", b)
		}
		return nil
	}
	if err := get(); err != nil {
		t.Fatalf("normal: %v", err)
	}

	// Silent: the connection is accepted, the request never answered.
	if err := p.SetMode(Silent); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = get()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("silent: %v, want a client timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("silent: returned after %v", d)
	}
	// A PUT whose body is never read is held too, and released by the
	// next mode change with a dropped connection.
	putErr := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPut, p.URL+"/y", strings.NewReader("body"))
		resp, err := (&http.Client{}).Do(req)
		if err == nil {
			resp.Body.Close()
		}
		putErr <- err
	}()
	waitFor(t, func() bool { return p.Held.Load() >= 2 })

	// Down: held requests dropped, open connections reset, new ones refused.
	open, err := net.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	waitFor(t, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.conns) >= 2 })
	if err := p.SetMode(Down); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-putErr:
		if err == nil {
			t.Fatal("held PUT got an answer")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("held PUT not released by Down")
	}
	_ = open.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := open.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("open connection after Down: read %v, want reset/EOF", err)
	}
	if err := get(); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("down: %v, want connection refused", err)
	}
	if p.Mode() != Down {
		t.Fatalf("mode %v", p.Mode())
	}

	// Normal again, on the same URL.
	if err := p.SetMode(Normal); err != nil {
		t.Fatal(err)
	}
	if err := get(); err != nil {
		t.Fatalf("normal again: %v", err)
	}
	if n := p.Requests.Load(); n < 4 {
		t.Fatalf("Requests = %d, want >= 4", n)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
