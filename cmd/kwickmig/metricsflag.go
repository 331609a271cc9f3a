package main

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/pflag"

	"github.com/kwick/kwickmig/internal/metrics"
	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/pgdelta"
	"github.com/kwick/kwickmig/internal/pgutil"
	ksync "github.com/kwick/kwickmig/internal/sync"
)

// metricsOptions are --metrics-addr and --metrics-linger, on the long
// commands (files sync, verify files, db copy/export/import, db
// final-delta/import-delta). srv is the running server while the command
// runs (nil without --metrics-addr; every use below is nil-safe).
type metricsOptions struct {
	Addr   string
	Linger time.Duration
	srv    *metrics.Server
}

func (o *metricsOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Addr, "metrics-addr", "", "serve Prometheus metrics at http://HOST:PORT/metrics while the command runs (e.g. 127.0.0.1:9187; :9187 listens on every interface)")
	f.DurationVar(&o.Linger, "metrics-linger", 0, "with --metrics-addr: keep serving the final values this long after the command ends (longer than the scrape interval, e.g. 30s, so the last scrape sees them); Ctrl-C ends the wait")
}

// run serves the metrics around fn: the address is bound before fn does
// any work (a port in use is a one-line error, exit 1), and the server
// stops when fn has returned and --metrics-linger has passed.
func (o *metricsOptions) run(ctx context.Context, command string, fn func() error) error {
	if o.Addr == "" {
		if o.Linger != 0 {
			return usageErrorf("--metrics-linger goes with --metrics-addr")
		}
		return fn()
	}
	if o.Linger < 0 {
		return usageErrorf("--metrics-linger %s: want a duration of 0 or more", o.Linger)
	}
	srv, err := metrics.Listen(o.Addr, command)
	if err != nil {
		return usageErrorf("--metrics-addr %s: %v", o.Addr, err)
	}
	o.srv = srv
	defer srv.Close()
	err = fn()
	srv.Finish(runExitCode(ctx, err))
	srv.Linger(ctx, o.Linger)
	return err
}

// s3 exposes the pacer's request figures (in flight, throttles, rate).
func (o *metricsOptions) s3(p *objstore.Pacer) {
	if o.srv == nil || p == nil {
		return
	}
	o.srv.S3(func() metrics.S3Counters {
		return metrics.S3Counters{InFlight: p.InFlight(), Throttles: p.Throttles(), RateLimit: p.Rate()}
	})
}

// filesSync exposes the syncer's live counters; the returned Outage is to
// be told about endpoint outages.
func (o *metricsOptions) filesSync(s *ksync.Syncer) *metrics.Outage {
	if o.srv == nil {
		return nil
	}
	return o.srv.FilesSync(func() metrics.FilesCounters {
		c := s.Live()
		return metrics.FilesCounters{Scanned: c.Scanned, Uploaded: c.Uploaded, Unchanged: c.Unchanged, Deleted: c.Deleted,
			Missing: c.Missing, Failed: c.Failed, Skipped: c.Skipped, BytesUploaded: c.BytesUploaded, Queued: c.Queued}
	})
}

// verifyKinds is verify files' differences by kind, every kind included
// (0 when none was found), for kwickmig_verify_differences.
func verifyKinds(counts map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(fileKindLabels))
	for _, k := range fileKindLabels {
		out[k.kind] = 0
	}
	for k, n := range counts {
		out[k] = n
	}
	return out
}

// captureBacklog exposes the source's capture backlog, measured on a
// connection of its own (opened at the first scrape, so a run nobody
// scrapes costs the source nothing; closed with the server).
func (o *metricsOptions) captureBacklog(sourceURL string) {
	if o.srv == nil || sourceURL == "" {
		return
	}
	var mu sync.Mutex
	var conn *pgx.Conn
	probe := func(ctx context.Context) (metrics.Backlog, bool, error) {
		mu.Lock()
		defer mu.Unlock()
		if conn == nil {
			c, err := pgutil.Connect(ctx, pgutil.Source, sourceURL)
			if err != nil {
				return metrics.Backlog{}, false, err
			}
			conn = c
		}
		b, ok, err := pgdelta.CaptureBacklog(ctx, conn)
		if err != nil {
			// A timed-out query leaves the connection unusable: the
			// next scrape opens a new one.
			conn.Close(context.Background())
			conn = nil
		}
		return metrics.Backlog{Rows: b.Rows, Bytes: b.Bytes, Oldest: b.Oldest}, ok, err
	}
	o.srv.CaptureBacklog(probe, func() {
		mu.Lock()
		defer mu.Unlock()
		if conn != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			conn.Close(ctx)
		}
	})
}
