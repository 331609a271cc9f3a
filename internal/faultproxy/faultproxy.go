// Package faultproxy is a reverse proxy for tests that sits in front of a real
// S3 server and injects the failures real networks and real S3 produce:
// 503 SlowDown, 500 InternalError, connection resets and latency. Retry and
// pacing code is tested against it, never against a mock.
package faultproxy

import (
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
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
	Latency  time.Duration
	// Match, if set, limits faults to requests it accepts.
	Match func(*http.Request) bool
}

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	URL string
	srv *httptest.Server

	mu     sync.Mutex
	faults Faults
	rnd    *rand.Rand

	Requests, SlowDowns, Internals, Resets atomic.Int64
}

// New starts a proxy in front of target (http://host:port).
func New(target string, f Faults) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	p := &Proxy{faults: f, rnd: rand.New(rand.NewPCG(1, 2))}
	rp := httputil.NewSingleHostReverseProxy(u)
	// Keep the client's Host header: SigV4 signs it.
	director := rp.Director
	rp.Director = func(r *http.Request) {
		host := r.Host
		director(r)
		r.Host = host
	}
	rp.ErrorLog = log.New(io.Discard, "", 0) // aborted client requests are expected here
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256, DialContext: (&net.Dialer{}).DialContext}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.Requests.Add(1)
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
				if hj, ok := w.(http.Hijacker); ok {
					if c, _, err := hj.Hijack(); err == nil {
						if tc, ok := c.(*net.TCPConn); ok {
							_ = tc.SetLinger(0) // RST, not FIN
						}
						c.Close()
						return
					}
				}
			}
		}
		rp.ServeHTTP(w, r)
	}))
	p.URL = p.srv.URL
	return p, nil
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

// Close stops the proxy.
func (p *Proxy) Close() { p.srv.Close() }

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
