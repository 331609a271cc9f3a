// Package sync copies a file tree into an object store, resumably:
//
//	walker (source.Walker, parallel, one sorted directory at a time)
//	  → planner (merges each directory with its checkpoint records)
//	  → uploader pool (bounded channel, Options.Concurrency workers, of
//	    which an adaptive limit (adaptive.go) lets as many upload as pays)
//	  → recorder (one goroutine, batched checkpoint commits)
//
// Nothing is recorded before the store confirmed the upload; a crash at any
// instant costs at most the uploads of the last unflushed batch.
// Import it as ksync where the standard library's sync is also needed.
package sync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/source"
)

// Options configure one sync run. Zero values get defaults in fill().
type Options struct {
	Src         string
	Prefix      string // the store's key prefix ("" or ending in "/"): the store adds it, sync counts it in the 1024-byte key limit
	Concurrency int    // the cap on uploads in flight (default DefaultConcurrency)
	// FixedConcurrency runs exactly Concurrency uploads in flight instead
	// of finding the number (adaptive.go).
	FixedConcurrency bool
	// OnConcurrency, if set, is told every change of the adaptive limit
	// and why ("window", "throttled"), for the debug log. It runs under the
	// limiter's lock: it must not block.
	OnConcurrency  func(limit int, why string)
	MaxMemory      int64 // bytes buffered for uploads, whatever Concurrency is (default DefaultMaxMemory)
	Walkers        int   // directories read concurrently (default 32)
	DryRun         bool
	Delete         bool
	Checksum       bool // compare content hashes instead of trusting size/mtime/ctime/inode
	FollowSymlinks bool
	Include        []string // globs; a file must match one (if any are given)
	Exclude        []string // globs; a matching file or directory is left out
	// Shard, if active, limits the run to one part of the tree (--shard):
	// nothing outside it is uploaded, counted or deleted.
	Shard source.Shard
	// BatchSize and FlushInterval bound the unflushed checkpoint batch.
	BatchSize     int
	FlushInterval time.Duration
	// Progress, if set, is called from one goroutine every second or so.
	Progress func(Counters)
	// Pacer, if set, supplies the throttle count for the result.
	Pacer *objstore.Pacer
	// MaxListed caps the failures and missing-file lists kept in the result.
	MaxListed int
	// BeforeUpload, if set, runs just before a file is opened for upload
	// (tests use it to change or remove files between walk and upload).
	BeforeUpload func(rel string)
	// AfterRead, if set, runs after a file was read and hashed, before the
	// checks that it did not change meanwhile (tests change it there, at a
	// moment no scheduler can move).
	AfterRead func(rel string)
	// BeforeComplete, if set, runs before a multipart upload is completed
	// (tests change the file there).
	BeforeComplete func(rel string)
	// MaxDelete caps the deletions of one run (--max-delete); a run that
	// would delete more deletes nothing and fails with ErrTooManyDeletes.
	MaxDelete DeleteLimit
	// AcceptSourceChange adopts a source root whose identity differs from
	// the recorded one (or that is empty) instead of refusing the run.
	AcceptSourceChange bool
	// OutageTimeout: how long the endpoint may stay unreachable before the
	// run stops with ErrOutage (default 10m). Probe asks the endpoint
	// whether it answers again (default: the store's Check).
	OutageTimeout time.Duration
	Probe         func(context.Context) error
	// OnOutage, if set, is told when an outage starts (down) and ends, for
	// the log: the progress line alone is invisible under nohup or systemd.
	OnOutage func(since time.Time, down bool)
}

func (o *Options) fill() {
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Walkers <= 0 {
		o.Walkers = 32
	}
	if o.MaxMemory <= 0 {
		o.MaxMemory = DefaultMaxMemory
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 2000
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.MaxListed <= 0 {
		o.MaxListed = 10000
	}
	if o.OutageTimeout <= 0 {
		o.OutageTimeout = 10 * time.Minute
	}
}

// Counters are the live totals, also the basis of the result.
type Counters struct {
	Scanned, Uploaded, Unchanged, Deleted, Missing, Failed, Skipped int64
	BytesUploaded                                                   int64
	Queued                                                          int64
	Throttles                                                       int64
	Elapsed                                                         time.Duration
	// OutageSince is when the current endpoint outage started (zero while
	// the endpoint answers).
	OutageSince time.Time
}

type counters struct {
	dirsPlanned                                                     atomic.Int64
	scanned, uploaded, unchanged, deleted, missing, failed, skipped atomic.Int64
	bytesUploaded, queued                                           atomic.Int64
}

// Failure is one file that could not be synced.
type Failure struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Result is the run's report; field names are the JSON report's.
type Result struct {
	Source            string    `json:"source"`
	Destination       string    `json:"destination"`
	Shard             string    `json:"shard,omitempty"` // K/N with --shard
	DryRun            bool      `json:"dry_run"`
	FilesScanned      int64     `json:"files_scanned"`
	FilesUploaded     int64     `json:"files_uploaded"`
	FilesUnchanged    int64     `json:"files_unchanged"`
	FilesDeleted      int64     `json:"files_deleted"`
	FilesMissing      int64     `json:"files_missing_on_source"`
	FilesFailed       int64     `json:"files_failed"`
	FilesSkipped      int64     `json:"files_skipped"`
	BytesUploaded     int64     `json:"bytes_uploaded"`
	Throttles         int64     `json:"throttle_events"`
	DurationSeconds   float64   `json:"duration_seconds"`
	Interrupted       bool      `json:"interrupted"`
	Failures          []Failure `json:"failures"`
	FailuresTruncated int64     `json:"failures_truncated,omitempty"`
	// MissingOnSource lists recorded files gone from the source (deleted
	// from the store with --delete, else only reported).
	MissingOnSource []string `json:"missing_on_source"`
	// WouldUpload lists, for --dry-run, the files that would be uploaded.
	WouldUpload []string `json:"would_upload,omitempty"`
	// Skipped lists symlinks and special files that were left out.
	SkippedPaths []Failure `json:"skipped"`
	// DeletionsRefused is the number of deletions --max-delete refused
	// (none of them was carried out); MaxDelete the limit that applied.
	DeletionsRefused int64  `json:"deletions_refused,omitempty"`
	MaxDelete        string `json:"max_delete,omitempty"`
	// Outages counts the times the endpoint stopped answering and the run
	// paused until it came back.
	Outages int `json:"outages"`
	// Warnings are things the operator should know that did not fail the
	// run (e.g. --delete on a bucket without versioning).
	Warnings []string `json:"warnings"`
	// Error is the reason the run stopped early, if it did.
	Error string `json:"error,omitempty"`
	Concurrency
}

// Concurrency reports what the adaptive limit did (adaptive.go).
type Concurrency struct {
	Mode     string `json:"concurrency_mode"`     // "adaptive" or "fixed"
	Cap      int    `json:"concurrency_cap"`      // --concurrency
	Start    int    `json:"concurrency_start"`    // the limit the run started with
	Max      int    `json:"concurrency_max"`      // the highest it reached
	Final    int    `json:"concurrency_final"`    // where it ended
	Backoffs int    `json:"concurrency_backoffs"` // halvings on throttling
}

// Syncer runs one sync.
type Syncer struct {
	opts   Options
	store  objstore.Store
	cp     *checkpoint.DB // nil only in dry runs without a checkpoint
	c      counters
	start  time.Time
	gate   *outageGate
	stop   context.CancelCauseFunc // ends the run early with a cause
	budget *budget                 // upload buffers (budget.go)
	lim    *limiter                // uploads in flight (adaptive.go)

	mu       gosync.Mutex
	result   Result
	pending  []job // deletions held back until the walk is over (--max-delete)
	nDelete  int64 // deletions planned, including those not kept in pending
	capKnown bool
	capN     int64
	dirsGone []string
}

// New prepares a sync of opts.Src into store, recording in cp. cp may be nil
// for a dry run without an existing checkpoint (then everything is new).
func New(store objstore.Store, cp *checkpoint.DB, opts Options) *Syncer {
	opts.fill()
	s := &Syncer{opts: opts, store: store, cp: cp, budget: newBudget(opts.MaxMemory),
		lim: newLimiter(opts.Concurrency, opts.FixedConcurrency, opts.Pacer.Throttles, opts.OnConcurrency)}
	s.result.Concurrency = Concurrency{Mode: "adaptive", Cap: opts.Concurrency, Start: s.lim.ctl.limit}
	if opts.FixedConcurrency {
		s.result.Concurrency.Mode = "fixed"
	}
	return s
}

// job is one unit of uploader work.
type job struct {
	rel      string
	entry    source.Entry
	old      *checkpoint.FileRecord // previous record, if any
	deletion bool                   // remove the object and its record
	dirGone  bool                   // rel is a directory marker to remove
}

// result of one job, for the recorder.
type done struct {
	op checkpoint.FileOp
}

// Run walks, uploads and records, then carries out the deletions if they
// are within MaxDelete. It returns the result even when it also returns an
// error. Errors: the user's ctx (Interrupted set), ErrSourceChanged,
// ErrTooManyDeletes, ErrOutage, a fatal store error (objstore.ErrFatal), a
// checkpoint write error — each stops the run at once with nothing of it
// lost: only confirmed uploads are recorded.
func (s *Syncer) Run(ctx context.Context) (*Result, error) {
	s.start = time.Now()
	s.result.Source = s.opts.Src
	s.result.DryRun = s.opts.DryRun
	s.result.Shard = s.opts.Shard.String()
	s.result.Failures = []Failure{}
	s.result.MissingOnSource = []string{}
	s.result.SkippedPaths = []Failure{}
	s.result.Warnings = []string{}

	if err := s.checkSource(); err != nil {
		res := s.finish()
		res.Error = err.Error()
		return res, err
	}

	// runCtx ends the run early (fatal store error, outage timeout,
	// checkpoint write failure) without looking like a user interrupt.
	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	s.stop = stop
	probe := s.opts.Probe
	if probe == nil {
		probe = s.store.Check
	}
	s.gate = newOutageGate(probe, s.opts.OutageTimeout, stop, s.opts.OnOutage)
	defer context.AfterFunc(runCtx, s.lim.wake)()

	records := make(chan done, s.opts.Concurrency*4)
	recErr := make(chan error, 1)
	go func() { recErr <- s.recorder(records) }()
	stopProgress := s.progressLoop()

	// Phase 1: walk and upload. Deletions are only planned.
	walkErr := s.pool(runCtx, records, func(jobs chan<- job) error { return s.walk(runCtx, jobs) })

	// Phase 2: deletions, only if the whole walk succeeded and they are
	// within --max-delete.
	var delErr error
	if walkErr == nil && runCtx.Err() == nil && s.opts.Delete && !s.opts.DryRun {
		delErr = s.deletePhase(runCtx, records)
	} else if walkErr == nil && runCtx.Err() == nil && s.opts.Delete && s.opts.DryRun {
		delErr = s.checkDeleteLimit()
	}
	close(records)
	rerr := <-recErr
	stopProgress()

	res := s.finish()
	var err error
	switch {
	case ctx.Err() != nil:
		res.Interrupted = true
		err = ctx.Err()
	case context.Cause(runCtx) != nil && runCtx.Err() != nil:
		err = context.Cause(runCtx)
	case walkErr != nil:
		err = walkErr
	case rerr != nil:
		err = fmt.Errorf("checkpoint %s: %w", s.cp.Path(), rerr)
	case delErr != nil:
		err = delErr
	}
	if err != nil && !res.Interrupted {
		res.Error = err.Error()
	}
	return res, err
}

// pool runs Concurrency uploaders over the jobs fill produces. The
// uploaders must not be cancelled by a walk error before they drain, but an
// early stop (ctx) makes them skip the remaining work: in-flight uploads
// are abandoned, nothing of theirs is recorded.
func (s *Syncer) pool(ctx context.Context, records chan<- done, fill func(chan<- job) error) error {
	jobs := make(chan job, s.opts.Concurrency*4)
	var wg gosync.WaitGroup
	for range s.opts.Concurrency {
		wg.Go(func() { s.uploader(ctx, jobs, records) })
	}
	err := fill(jobs)
	close(jobs)
	wg.Wait()
	return err
}

// deletePhase deletes the files planned for deletion, if they are within
// the limit, then drops the records of vanished directories.
func (s *Syncer) deletePhase(ctx context.Context, records chan<- done) error {
	if err := s.checkDeleteLimit(); err != nil {
		return err
	}
	s.mu.Lock()
	pending, dirs := s.pending, s.dirsGone
	s.pending, s.dirsGone = nil, nil
	s.mu.Unlock()
	err := s.pool(ctx, records, func(jobs chan<- job) error {
		for _, j := range pending {
			if err := s.queue(ctx, jobs, j); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || ctx.Err() != nil {
		return err
	}
	// Directory markers go last, after every deletion below them was
	// handed to the recorder (a marker is only removed when nothing is
	// recorded below it any more).
	for _, d := range dirs {
		records <- done{op: checkpoint.FileOp{Rel: d, DeleteDir: true}}
	}
	return nil
}

// checkDeleteLimit refuses the planned deletions when there are more than
// --max-delete allows.
func (s *Syncer) checkDeleteLimit() error {
	s.mu.Lock()
	n := s.nDelete
	s.mu.Unlock()
	if n == 0 {
		return nil
	}
	limit, desc, err := s.opts.MaxDelete.resolve(func() (int64, error) {
		if s.cp == nil {
			return 0, nil
		}
		c, err := s.cp.CountFiles()
		return int64(c), err
	})
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", s.cp.Path(), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.result.MaxDelete = desc
	if n <= limit {
		return nil
	}
	s.result.DeletionsRefused = n
	if s.opts.DryRun {
		s.c.deleted.Store(0)
	} else {
		s.c.missing.Add(n) // still reported as gone from the source
	}
	var first []string
	for _, p := range s.result.MissingOnSource {
		if len(first) == 5 {
			break
		}
		first = append(first, p)
	}
	more := ""
	if n > int64(len(first)) {
		more = ", …"
	}
	return fmt.Errorf("%w: --delete would remove %d objects, more than --max-delete (%s); nothing was deleted (first: %s%s); "+
		"if this is intended, rerun with --max-delete %d", ErrTooManyDeletes, n, desc, strings.Join(first, ", "), more, n)
}

func (s *Syncer) finish() *Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.snapshot()
	r := &s.result
	r.FilesScanned, r.FilesUploaded, r.FilesUnchanged = c.Scanned, c.Uploaded, c.Unchanged
	r.FilesDeleted, r.FilesMissing, r.FilesFailed, r.FilesSkipped = c.Deleted, c.Missing, c.Failed, c.Skipped
	r.BytesUploaded, r.Throttles = c.BytesUploaded, c.Throttles
	r.DurationSeconds = time.Since(s.start).Seconds()
	if s.gate != nil {
		r.Outages = s.gate.outages()
	}
	r.Concurrency.Final, r.Concurrency.Max, r.Concurrency.Backoffs = s.lim.stats()
	return r
}

func (s *Syncer) snapshot() Counters {
	return Counters{
		Scanned: s.c.scanned.Load(), Uploaded: s.c.uploaded.Load(), Unchanged: s.c.unchanged.Load(),
		Deleted: s.c.deleted.Load(), Missing: s.c.missing.Load(), Failed: s.c.failed.Load(),
		Skipped: s.c.skipped.Load(), BytesUploaded: s.c.bytesUploaded.Load(), Queued: s.c.queued.Load(),
		Throttles: s.opts.Pacer.Throttles(), Elapsed: time.Since(s.start),
		OutageSince: s.gate.state(),
	}
}

// progressLoop reports progress every second.
func (s *Syncer) progressLoop() (stop func()) {
	if s.opts.Progress == nil {
		return func() {}
	}
	quit := make(chan struct{})
	var wg gosync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-quit:
				s.opts.Progress(s.snapshot())
				return
			case <-t.C:
				s.opts.Progress(s.snapshot())
			}
		}
	})
	return func() { close(quit); wg.Wait() }
}

// fail records a per-file failure: counted, listed (up to MaxListed), never fatal.
func (s *Syncer) fail(rel string, err error) {
	s.c.failed.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.result.Failures) < s.opts.MaxListed {
		s.result.Failures = append(s.result.Failures, Failure{Path: rel, Reason: reason(err)})
	} else {
		s.result.FailuresTruncated++
	}
}

func (s *Syncer) skip(rel, why string) {
	s.c.skipped.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.result.SkippedPaths) < s.opts.MaxListed {
		s.result.SkippedPaths = append(s.result.SkippedPaths, Failure{Path: rel, Reason: why})
	}
}

func (s *Syncer) listMissing(rel string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.result.MissingOnSource) < s.opts.MaxListed {
		s.result.MissingOnSource = append(s.result.MissingOnSource, rel)
	}
}

func (s *Syncer) listWouldUpload(rel string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.result.WouldUpload) < s.opts.MaxListed {
		s.result.WouldUpload = append(s.result.WouldUpload, rel)
	}
}

// reason turns an error into a short report line. The path is already in
// the report's path field, so os.PathError's own copy of it is dropped.
func reason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}
