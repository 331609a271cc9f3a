// Package faultproxy is a reverse proxy for tests that sits in front of a real
// S3 server and injects the failures real networks and real S3 produce:
// 503 SlowDown, 500 InternalError, connection resets, latency, an endpoint
// that stops answering and one that goes away. Retry, pacing and outage code
// is tested against it, never against a mock.
//
// Per-request faults are probabilities (Faults, SetFaults). On top of them the
// proxy has a mode, switchable at any time while it runs:
//
//	p, _ := faultproxy.New(endpoint, faultproxy.Faults{})
//	p.SetMode(faultproxy.Silent) // accept connections and requests, never answer
//	p.SetMode(faultproxy.Down)   // refuse new connections, reset open ones
//	p.SetMode(faultproxy.Normal) // forward again (same URL, same port)
//	p.Mode()                     // the current mode
//	p.Requests.Load()            // requests received (any mode); also Held, SlowDowns, Internals, Resets
//
// Silent holds every request without reading its body or writing a byte
// (the client sees a response-header timeout). A held request stays held
// until the mode changes or the proxy closes; then its connection is reset,
// so clients see the end of a silence as a dropped connection.
//
// Down closes the listening socket, so new connections are refused
// (ECONNREFUSED), and resets every open connection, held ones included.
// Normal listens again on the same address.
package faultproxy

import (
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Faults are probabilities (0..1) per request, drawn independently, plus a
// fixed latency added to every request.
type Faults struct {
	SlowDown float64 // answer 503 SlowDown without forwarding
	Internal float64 // answer 500 InternalError without forwarding
	Reset    float64 // drop the connection without an answer (after reading the request)
	// Hold keeps the request unanswered (as Silent does, but only for the
	// requests drawn and matched: e.g. uploads black-holed while HEAD
	// requests are answered) until the client gives up or the mode changes.
	Hold    float64
	Latency time.Duration
	// Match, if set, limits faults to requests it accepts.
	Match func(*http.Request) bool
}

// Mode is how the proxy treats connections and requests as a whole.
type Mode int32

const (
	// Normal forwards requests (subject to Faults).
	Normal Mode = iota
	// Silent accepts connections and reads request headers, but never
	// answers: requests are held until the mode changes.
	Silent
	// Down refuses new connections and resets open ones.
	Down
)

func (m Mode) String() string {
	switch m {
	case Normal:
		return "normal"
	case Silent:
		return "silent"
	case Down:
		return "down"
	}
	return fmt.Sprintf("Mode(%d)", int32(m))
}

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	URL  string // http://127.0.0.1:PORT, unchanged across modes
	addr string
	srv  *http.Server

	mu      sync.Mutex
	faults  Faults
	rnd     *rand.Rand
	mode    Mode
	ln      net.Listener          // nil while Down
	conns   map[net.Conn]struct{} // open client connections
	changed chan struct{}         // closed (and replaced) on every mode change
	closed  bool

	// Requests counts every request received, whatever the mode; Held the
	// requests held unanswered in Silent mode.
	Requests, SlowDowns, Internals, Resets, Held atomic.Int64
}

// New starts a proxy in front of target (http://host:port).
func New(target string, f Faults) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		faults:  f,
		rnd:     rand.New(rand.NewPCG(1, 2)),
		addr:    ln.Addr().String(),
		ln:      ln,
		conns:   map[net.Conn]struct{}{},
		changed: make(chan struct{}),
	}
	p.URL = "http://" + p.addr
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(u)
		pr.Out.Host = pr.In.Host // keep the client's Host header: SigV4 signs it
	}}
	rp.ErrorLog = log.New(io.Discard, "", 0) // aborted client requests are expected here
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256, DialContext: (&net.Dialer{}).DialContext}
	p.srv = &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.serve(w, r, rp) }),
		ConnState: p.track,
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	go p.srv.Serve(ln) //nolint:errcheck // returns when the listener closes (Down, Close)
	return p, nil
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request, rp *httputil.ReverseProxy) {
	p.Requests.Add(1)
	mode, changed := p.state()
	switch mode {
	case Silent:
		p.Held.Add(1)
		select {
		case <-changed:
		case <-r.Context().Done():
		}
		reset(w)
		return
	case Down:
		// Accepted just before the listener closed.
		reset(w)
		return
	}
	f, roll := p.draw()
	if f.Latency > 0 {
		time.Sleep(f.Latency)
	}
	if f.Match == nil || f.Match(r) {
		switch {
		case roll < f.SlowDown:
			p.SlowDowns.Add(1)
			drain(r)
			writeError(w, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
			return
		case roll < f.SlowDown+f.Internal:
			p.Internals.Add(1)
			drain(r)
			writeError(w, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
			return
		case roll < f.SlowDown+f.Internal+f.Reset:
			p.Resets.Add(1)
			drain(r)
			if reset(w) {
				return
			}
		case roll < f.SlowDown+f.Internal+f.Reset+f.Hold:
			p.Held.Add(1)
			select {
			case <-changed:
			case <-r.Context().Done():
			}
			reset(w)
			return
		}
	}
	rp.ServeHTTP(w, r)
}

// reset drops the request's connection with a TCP RST and no answer.
func reset(w http.ResponseWriter) bool {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return false
	}
	c, _, err := hj.Hijack()
	if err != nil {
		return false
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // RST, not FIN
	}
	c.Close()
	return true
}

// track keeps the set of open connections, for Down.
func (p *Proxy) track(c net.Conn, s http.ConnState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch s {
	case http.StateNew:
		if p.mode == Down || p.closed {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			c.Close()
			return
		}
		p.conns[c] = struct{}{}
	case http.StateHijacked, http.StateClosed:
		delete(p.conns, c)
	}
}

func (p *Proxy) state() (Mode, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.changed
}

func (p *Proxy) draw() (Faults, float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults, p.rnd.Float64()
}

// SetFaults changes the faults for subsequent requests.
func (p *Proxy) SetFaults(f Faults) {
	p.mu.Lock()
	p.faults = f
	p.mu.Unlock()
}

// Mode returns the current mode.
func (p *Proxy) Mode() Mode {
	m, _ := p.state()
	return m
}

// SetMode switches the proxy to m at once: requests held by Silent are
// released (their connections reset); Down stops listening and resets every
// open connection; Normal listens again on the same address. It fails only
// if the address cannot be listened on again.
func (p *Proxy) SetMode(m Mode) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("faultproxy: closed")
	}
	if m == p.mode {
		return nil
	}
	close(p.changed)
	p.changed = make(chan struct{})
	if m == Down {
		if p.ln != nil {
			p.ln.Close()
			p.ln = nil
		}
		for c := range p.conns {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			c.Close()
			delete(p.conns, c)
		}
	} else if p.ln == nil {
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			return fmt.Errorf("faultproxy: listen again on %s: %w", p.addr, err)
		}
		p.ln = ln
		go p.srv.Serve(ln) //nolint:errcheck // see New
	}
	p.mode = m
	return nil
}

// Close stops the proxy and releases held requests.
func (p *Proxy) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.changed)
		p.changed = make(chan struct{})
	}
	p.mu.Unlock()
	_ = p.srv.Close()
}

func drain(r *http.Request) {
	buf := make([]byte, 32<<10)
	for {
		if _, err := r.Body.Read(buf); err != nil {
			return
		}
	}
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>` + code +
		`</Code><Message>` + msg + `</Message><RequestId>faultproxy</RequestId></Error>`))
}
