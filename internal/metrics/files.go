package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// FilesCounters are files sync's running totals (internal/sync's
// Counters, as Syncer.Live reads them).
type FilesCounters struct {
	Scanned, Uploaded, Unchanged, Deleted, Missing, Failed, Skipped int64
	BytesUploaded                                                   int64
	Queued                                                          int64
}

// Outage follows the endpoint's outages (files sync pauses while the
// endpoint does not answer) for kwickmig_files_outage_paused.
type Outage struct {
	paused atomic.Bool
	count  atomic.Int64
}

// Set records that an outage started (down) or ended. Nil-safe.
func (o *Outage) Set(down bool) {
	if o == nil {
		return
	}
	if down && !o.paused.Load() {
		o.count.Add(1)
	}
	o.paused.Store(down)
}

// FilesSync registers files sync's metrics, read from live at each scrape.
// The returned Outage is to be told when the endpoint goes away and comes
// back (nil when s is nil).
func (s *Server) FilesSync(live func() FilesCounters) *Outage {
	if s == nil {
		return nil
	}
	o := &Outage{}
	type snap struct {
		c FilesCounters
		o *Outage
	}
	f := func(v int64) float64 { return float64(v) }
	s.reg.MustRegister(&snapCollector[snap]{
		snap: func() snap { return snap{live(), o} },
		metrics: []snapMetric[snap]{
			counter("kwickmig_files_scanned_total", "Source files looked at (walked) by this run.", func(v snap) float64 { return f(v.c.Scanned) }),
			counter("kwickmig_files_uploaded_total", "Files uploaded (stored and confirmed by the endpoint) by this run.", func(v snap) float64 { return f(v.c.Uploaded) }),
			counter("kwickmig_files_uploaded_bytes_total", "Bytes of the files uploaded by this run.", func(v snap) float64 { return f(v.c.BytesUploaded) }),
			counter("kwickmig_files_unchanged_total", "Files found unchanged since their recorded upload (nothing sent).", func(v snap) float64 { return f(v.c.Unchanged) }),
			counter("kwickmig_files_failed_total", "Files that could not be synced this run (listed in the report; the run exits 2).", func(v snap) float64 { return f(v.c.Failed) }),
			counter("kwickmig_files_skipped_total", "Symlinks and special files left out.", func(v snap) float64 { return f(v.c.Skipped) }),
			counter("kwickmig_files_deleted_total", "Objects deleted (--delete) because their files are gone from the source.", func(v snap) float64 { return f(v.c.Deleted) }),
			counter("kwickmig_files_missing_on_source_total", "Recorded files found gone from the source (deleted only with --delete).", func(v snap) float64 { return f(v.c.Missing) }),
			gauge("kwickmig_files_queue_depth", "Files planned for upload and waiting for a free uploader.", func(v snap) float64 { return f(v.c.Queued) }),
			gauge("kwickmig_files_outage_paused", "1 while the run is paused because the endpoint does not answer (it probes and resumes), else 0.", func(v snap) float64 { return b2f(v.o.paused.Load()) }),
			counter("kwickmig_files_outages_total", "Times the endpoint stopped answering during this run.", func(v snap) float64 { return f(v.o.count.Load()) }),
		},
	})
	return o
}

// S3Counters are the object store's request figures (objstore.Pacer).
type S3Counters struct {
	InFlight  int64
	Throttles int64
	RateLimit float64 // requests/s the pacer allows now; 0 = no limit
}

// S3 registers the object-store request metrics, read from live at each
// scrape.
func (s *Server) S3(live func() S3Counters) {
	if s == nil {
		return
	}
	s.reg.MustRegister(&snapCollector[S3Counters]{
		snap: live,
		metrics: []snapMetric[S3Counters]{
			gauge("kwickmig_s3_requests_in_flight", "S3 request attempts sent and not yet answered.", func(v S3Counters) float64 { return float64(v.InFlight) }),
			counter("kwickmig_s3_throttle_events_total", "Throttling answers from the endpoint (503 SlowDown, 429 and the like); each slows the request rate down.", func(v S3Counters) float64 { return float64(v.Throttles) }),
			gauge("kwickmig_s3_request_rate_limit", "Requests per second the adaptive pacer allows now after throttling (0: no limit).", func(v S3Counters) float64 { return v.RateLimit }),
		},
	})
}

// VerifyCounters are verify files' running totals.
type VerifyCounters struct {
	Files, Objects, ContentChecked, Differences int64
}

// Verify is verify files' metrics: totals as of its last progress tick,
// and the differences by kind once the run has ended.
type Verify struct {
	c     atomic.Pointer[VerifyCounters]
	kinds *prometheus.GaugeVec
}

// VerifyFiles registers verify files' metrics. Nil when s is nil.
func (s *Server) VerifyFiles() *Verify {
	if s == nil {
		return nil
	}
	v := &Verify{kinds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kwickmig_verify_differences",
		Help: "Differences found by kind (missing, extra, size, checksum, content, changed_since_sync, not_yet_synced, deleted_since_sync, error), set when the run ends (every kind, 0 included).",
	}, []string{"kind"})}
	v.c.Store(&VerifyCounters{})
	f := func(n int64) float64 { return float64(n) }
	s.reg.MustRegister(v.kinds, &snapCollector[*VerifyCounters]{
		snap: func() *VerifyCounters { return v.c.Load() },
		metrics: []snapMetric[*VerifyCounters]{
			counter("kwickmig_verify_files_checked_total", "Source files compared with the bucket so far.", func(c *VerifyCounters) float64 { return f(c.Files) }),
			counter("kwickmig_verify_objects_listed_total", "Objects listed from the bucket so far.", func(c *VerifyCounters) float64 { return f(c.Objects) }),
			counter("kwickmig_verify_content_checked_total", "Files whose content was compared (--checksum, --deep).", func(c *VerifyCounters) float64 { return f(c.ContentChecked) }),
			counter("kwickmig_verify_differences_total", "Differences found so far, of every kind.", func(c *VerifyCounters) float64 { return f(c.Differences) }),
		},
	})
	return v
}

// Progress stores the totals (called every second, and once at the end).
// Nil-safe.
func (v *Verify) Progress(c VerifyCounters) {
	if v != nil {
		v.c.Store(&c)
	}
}

// Kinds sets the differences by kind at the end of the run. Nil-safe.
func (v *Verify) Kinds(counts map[string]int64) {
	if v == nil {
		return
	}
	for k, n := range counts {
		v.kinds.WithLabelValues(k).Set(float64(n))
	}
}
