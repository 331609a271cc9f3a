// Package metrics serves a running command's progress as Prometheus metrics
// on --metrics-addr (GET /metrics). It is the only package that imports the
// Prometheus client. The packages that do the work never import it: they
// keep their counters in atomics (read here only when scraped) or call
// plain hooks (pgcopy.Observer, pgdelta.Options.OnBatch) that this package
// implements, so the hot path pays an atomic add at most.
//
// Every metric is on the Server's own registry (not the global default),
// with the Go runtime's and the process's collectors beside it. Names start
// with kwickmig_ (the README lists them).
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server is one command's metrics endpoint.
type Server struct {
	reg      *prometheus.Registry
	ln       net.Listener
	srv      *http.Server
	served   chan struct{}
	finished atomic.Bool
	exitCode atomic.Int64
	closers  []func()
	finishes []func()
	close    sync.Once
}

// Listen binds addr (HOST:PORT; ":PORT" is every interface) at once, so a
// port in use fails the command before it does any work, and starts
// serving /metrics for command (the kwickmig_run_info label).
func Listen(addr, command string) (*Server, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return nil, fmt.Errorf("want HOST:PORT such as 127.0.0.1:9187 or :9187")
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			err = oe.Err // "bind: address already in use", without the repeated address
		}
		return nil, err
	}
	s := &Server{reg: prometheus.NewRegistry(), ln: ln, served: make(chan struct{})}
	s.exitCode.Store(-1)
	s.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		runCollector(s, command, time.Now()),
	)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		// A scrape must not wait on a stuck collector longer than
		// Prometheus's default scrape timeout.
		Timeout: 10 * time.Second,
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "kwickmig %s: metrics at /metrics\n", command)
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// Addr is the address the server listens on (tests pass port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Registry is the server's own registry.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// onClose runs fn when the server closes (a connection of a collector).
func (s *Server) onClose(fn func()) { s.closers = append(s.closers, fn) }

// Finish marks the run as ended with exit code code: kwickmig_run_finished
// becomes 1 and kwickmig_run_exit_code the code. The values stay as they
// were at the end; Linger keeps them scrapeable.
func (s *Server) Finish(code int) {
	if s == nil {
		return
	}
	s.exitCode.Store(int64(code))
	s.finished.Store(true)
	for _, fn := range s.finishes {
		fn()
	}
}

// Linger keeps serving the final values for d, or until ctx ends (Ctrl-C,
// SIGTERM): a run that ends between two scrapes would otherwise never show
// its last values.
func (s *Server) Linger(ctx context.Context, d time.Duration) {
	if s == nil || d <= 0 || ctx.Err() != nil {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Close stops serving: a scrape in progress gets a second to finish.
// Closing twice is harmless.
func (s *Server) Close() {
	if s == nil {
		return
	}
	s.close.Do(s.shutdown)
}

func (s *Server) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
	}
	<-s.served
	for _, fn := range s.closers {
		fn()
	}
}

// runCollector: which command this is, since when, and whether it ended.
func runCollector(s *Server, command string, started time.Time) prometheus.Collector {
	return &snapCollector[struct{}]{
		snap: func() struct{} { return struct{}{} },
		metrics: []snapMetric[struct{}]{
			{desc: prometheus.NewDesc("kwickmig_run_info", "The kwickmig command this endpoint belongs to (always 1).", nil,
				prometheus.Labels{"command": command}), typ: prometheus.GaugeValue, get: func(struct{}) float64 { return 1 }},
			{desc: desc("kwickmig_run_start_time_seconds", "When the command started, in Unix seconds."),
				typ: prometheus.GaugeValue, get: func(struct{}) float64 { return float64(started.UnixNano()) / 1e9 }},
			{desc: desc("kwickmig_run_finished", "1 once the command has ended (the values are final; see --metrics-linger), else 0."),
				typ: prometheus.GaugeValue, get: func(struct{}) float64 { return b2f(s.finished.Load()) }},
			{desc: desc("kwickmig_run_exit_code", "The command's exit code once it has ended (0 ok, 1 could not run, 2 failures or differences, 130 interrupted); -1 while it runs."),
				typ: prometheus.GaugeValue, get: func(struct{}) float64 { return float64(s.exitCode.Load()) }},
		},
	}
}

func desc(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
