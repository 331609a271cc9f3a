package metrics

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DB follows db copy, db export and db import: it implements
// pgcopy.Observer.
type DB struct {
	streamed prometheus.Counter
	rows     *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	parts    *prometheus.CounterVec
}

// DBCopy registers the bulk copy's metrics. Nil when s is nil.
func (s *Server) DBCopy() *DB {
	if s == nil {
		return nil
	}
	d := &DB{
		streamed: prometheus.NewCounter(prometheus.CounterOpts{Name: "kwickmig_db_streamed_bytes_total",
			Help: "Bytes of COPY data streamed so far (as it flows, before each part commits)."}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kwickmig_db_rows_copied_total",
			Help: "Rows copied by this run, by table (schema.name), counted as each part of the table commits on the target (or is written to the export)."}, []string{"table"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kwickmig_db_copied_bytes_total",
			Help: "Bytes of COPY data of the parts committed by this run, by table."}, []string{"table"}),
		parts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kwickmig_db_parts_total",
			Help: "Table parts done, by state: copied (by this run) or resumed (done by an earlier run, skipped)."}, []string{"state"}),
	}
	s.reg.MustRegister(d.streamed, d.rows, d.bytes, d.parts)
	return d
}

// Streamed counts COPY bytes as they flow.
func (d *DB) Streamed(n int64) { d.streamed.Add(float64(n)) }

// PartLoaded counts one part of schema.name: its rows and bytes when this
// run copied it; a resumed part only in kwickmig_db_parts_total.
func (d *DB) PartLoaded(schema, name string, rows, bytes int64, resumed bool) {
	if resumed {
		d.parts.WithLabelValues("resumed").Inc()
		return
	}
	t := schema + "." + name
	d.rows.WithLabelValues(t).Add(float64(rows))
	d.bytes.WithLabelValues(t).Add(float64(bytes))
	d.parts.WithLabelValues("copied").Inc()
}

// DeltaRows returns the hook for pgdelta.Options.OnBatch: each batch's
// changes are counted as applied (final-delta, import-delta) or, with
// exported, as written to batch files (final-delta --out). Nil when s is nil.
func (s *Server) DeltaRows(exported bool) func(rows int) {
	if s == nil {
		return nil
	}
	rows := prometheus.NewCounter(prometheus.CounterOpts{Name: "kwickmig_delta_rows_applied_total",
		Help: "Captured changes applied on the target by this run (committed batch by batch)."})
	if exported {
		rows = prometheus.NewCounter(prometheus.CounterOpts{Name: "kwickmig_delta_rows_exported_total",
			Help: "Captured changes written to batch files by this run (final-delta --out)."})
	}
	batches := prometheus.NewCounter(prometheus.CounterOpts{Name: "kwickmig_delta_batches_total",
		Help: "Batches of changes committed on the target (or written as files) by this run."})
	s.reg.MustRegister(rows, batches)
	return func(n int) {
		rows.Add(float64(n))
		batches.Inc()
	}
}

// Backlog is the source's capture backlog (pgdelta.CaptureBacklog).
type Backlog struct {
	Rows, Bytes int64
	Oldest      time.Time // zero: no backlog
}

// BacklogProbe measures the backlog; ok is false when capture is not
// installed (then no backlog metric is shown).
type BacklogProbe func(ctx context.Context) (b Backlog, ok bool, err error)

// Backlog timing: a scrape runs the probe at most every backlogEvery (the
// count walks the backlog's log rows) and waits at most backlogTimeout.
var (
	backlogEvery   = 15 * time.Second
	backlogTimeout = 5 * time.Second
)

// CaptureBacklog registers the capture backlog gauges, measured by probe
// when scraped (at most every 15 s; the last value in between). closeFn,
// if not nil, runs when the server closes (the probe's connection).
func (s *Server) CaptureBacklog(probe BacklogProbe, closeFn func()) {
	if s == nil {
		return
	}
	if closeFn != nil {
		s.onClose(closeFn)
	}
	c := &backlogCollector{probe: probe}
	// The next scrape after the run measures the backlog the run left.
	s.finishes = append(s.finishes, c.expire)
	s.reg.MustRegister(c)
}

var (
	backlogRows   = desc("kwickmig_capture_backlog_rows", "Captured changes on the source not yet applied by a finished delta round (before the first round: every change since capture install). Measured at most every 15 s.")
	backlogBytes  = desc("kwickmig_capture_backlog_bytes", "Size of those changes in the source's change log.")
	backlogAge    = desc("kwickmig_capture_backlog_oldest_seconds", "Age of the oldest change in the backlog (0: none).")
	backlogErrors = desc("kwickmig_capture_backlog_errors_total", "Backlog measurements that failed (the last good values are still shown).")
)

type backlogCollector struct {
	probe BacklogProbe
	mu    sync.Mutex
	at    time.Time
	last  Backlog
	ok    bool
	fails atomic.Int64
}

func (c *backlogCollector) expire() {
	c.mu.Lock()
	c.at = time.Time{}
	c.mu.Unlock()
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- backlogRows
	ch <- backlogBytes
	ch <- backlogAge
	ch <- backlogErrors
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock() // one measurement at a time; concurrent scrapes share it
	if time.Since(c.at) >= backlogEvery {
		ctx, cancel := context.WithTimeout(context.Background(), backlogTimeout)
		b, ok, err := c.probe(ctx)
		cancel()
		c.at = time.Now()
		if err != nil {
			c.fails.Add(1)
		} else {
			c.last, c.ok = b, ok
		}
	}
	b, ok := c.last, c.ok
	c.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(backlogErrors, prometheus.CounterValue, float64(c.fails.Load()))
	if !ok {
		return
	}
	age := 0.0
	if !b.Oldest.IsZero() {
		age = max(time.Since(b.Oldest).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(backlogRows, prometheus.GaugeValue, float64(b.Rows))
	ch <- prometheus.MustNewConstMetric(backlogBytes, prometheus.GaugeValue, float64(b.Bytes))
	ch <- prometheus.MustNewConstMetric(backlogAge, prometheus.GaugeValue, age)
}
