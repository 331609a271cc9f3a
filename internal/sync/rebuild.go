package sync

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	gosync "sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/source"
)

// Rebuild recovers a lost or damaged checkpoint from one listing of the
// store, so that losing the checkpoint never means uploading millions of
// files again. An object is recorded as its file's upload when
//
//   - its key is what files sync makes of a path (source.ObjectKey), and
//     the walk of a sync would reach that path as a regular file (no
//     symlinked directory on the way unless FollowSymlinks, not filtered),
//   - the file's size is the object's size, and
//   - the object's stored mtime (x-amz-meta-mtime, written by files sync)
//     is the file's mtime to the nanosecond (one HEAD per size-matching
//     object, Concurrency in parallel, since listings carry no metadata);
//     with Checksum, also the stored CRC32C is a fresh hash of the file.
//
// The record takes size, mtime, ctime and inode from the file as it is
// now, so the next sync finds it unchanged; everything else stays
// unrecorded and the next sync uploads it. Nothing is deleted, and objects
// without a file are not recorded (a later --delete cannot touch them).
//
// cp must hold no file records (ErrNotEmpty otherwise).
func Rebuild(ctx context.Context, store objstore.Store, cp *checkpoint.DB, opts RebuildOptions) (*RebuildResult, error) {
	opts.fill()
	if n, err := cp.CountFiles(); err != nil {
		return nil, err
	} else if n > 0 {
		return nil, fmt.Errorf("%w: checkpoint %s already holds %d file records", ErrNotEmpty, cp.Path(), n)
	}
	r := &rebuilder{opts: opts, store: store, cp: cp, dirs: map[string]bool{}, start: time.Now()}
	return r.run(ctx)
}

// ErrNotEmpty: Rebuild only fills a checkpoint without file records.
var ErrNotEmpty = errors.New("checkpoint is not empty")

// RebuildOptions configure Rebuild.
type RebuildOptions struct {
	Src            string
	Prefix         string // the store's key prefix, as Options.Prefix
	Concurrency    int    // stats and HEADs in flight (default 64)
	FollowSymlinks bool   // as files sync --follow-symlinks
	Checksum       bool   // also require the stored CRC32C to match the file's bytes (reads every candidate)
	Filter         source.Filter
	BatchSize      int // records per checkpoint commit (default 2000)
	MaxListed      int // failures kept in the result (default 1000)
	// Progress, if set, is called about every second.
	Progress func(RebuildCounters)
}

func (o *RebuildOptions) fill() {
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 2000
	}
	if o.MaxListed <= 0 {
		o.MaxListed = 1000
	}
}

// RebuildCounters are the live totals.
type RebuildCounters struct {
	Listed, Recorded, NotMatching, Errors int64
	Elapsed                               time.Duration
}

// RebuildResult is the summary; field names are the JSON report's.
type RebuildResult struct {
	Source          string `json:"source"`
	Destination     string `json:"destination"`
	ObjectsListed   int64  `json:"objects_listed"`
	Recorded        int64  `json:"recorded"`
	BytesRecorded   int64  `json:"bytes_recorded"`
	NotMatching     int64  `json:"not_matching"` // the sum of the reasons below
	NoFile          int64  `json:"no_file"`      // no regular file at the key's path
	SizeDiffers     int64  `json:"size_differs"`
	MtimeDiffers    int64  `json:"mtime_differs"` // includes objects without a stored mtime
	ChecksumDiffers int64  `json:"checksum_differs,omitempty"`
	NotFromSync     int64  `json:"not_from_sync"` // keys files sync never writes, or --include/--exclude leave out
	// Errors are objects that could not be checked (stat, HEAD or read
	// failures): left unrecorded, listed in Failures.
	Errors          int64     `json:"errors"`
	Failures        []Failure `json:"failures"`
	DurationSeconds float64   `json:"duration_seconds"`
	Interrupted     bool      `json:"interrupted"`
}

type rebuilder struct {
	opts  RebuildOptions
	store objstore.Store
	cp    *checkpoint.DB
	start time.Time

	listed, recorded, bytes                      atomic.Int64
	noFile, size, mtime, sum, notOurs, errorsCnt atomic.Int64

	mu       gosync.Mutex
	dirs     map[string]bool // directory rel → a real directory the walk enters
	failures []Failure
}

type candidate struct {
	rel  string
	info objstore.ObjectInfo
}

func (r *rebuilder) run(ctx context.Context) (*RebuildResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	cands := make(chan candidate, 4*r.opts.Concurrency)
	recs := make(chan checkpoint.FileOp, 4*r.opts.Concurrency)

	var workers gosync.WaitGroup
	for range r.opts.Concurrency {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for c := range cands {
				if ctx.Err() != nil {
					continue
				}
				if op, ok := r.check(ctx, c); ok {
					recs <- op
				}
			}
		}()
	}
	recErr := make(chan error, 1)
	go func() { recErr <- r.record(recs, cancel) }()
	stopProgress := r.progress()

	listErr := r.store.List(ctx, "", "", func(info objstore.ObjectInfo) error {
		r.listed.Add(1)
		rel, ok := r.relOf(info.Key)
		if !ok {
			r.notOurs.Add(1)
			return nil
		}
		select {
		case cands <- candidate{rel: rel, info: info}:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	})
	close(cands)
	workers.Wait()
	close(recs)
	err := <-recErr
	stopProgress()

	res := r.result()
	switch {
	case err != nil: // the checkpoint could not be written: nothing else matters
		return res, err
	case ctx.Err() != nil && context.Cause(ctx) != context.Canceled:
		return res, context.Cause(ctx)
	case ctx.Err() != nil || errors.Is(listErr, context.Canceled):
		res.Interrupted = true
		return res, nil
	case listErr != nil:
		return res, fmt.Errorf("listing the bucket: %w (what was recorded so far is kept; run again after moving this checkpoint aside, or go on with files sync)", listErr)
	}
	return res, nil
}

// relOf maps a key (relative to the store's prefix) back to the path files
// sync would have uploaded it from, if any.
func (r *rebuilder) relOf(key string) (string, bool) {
	rel, err := source.DecodeKey("", key)
	if err != nil || rel == "" || strings.ContainsRune(rel, 0) {
		return "", false
	}
	for _, seg := range strings.Split(rel, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", false // "a//b", "./x", "dir/": never a key of a walked file
		}
	}
	// Only the canonical spelling: files sync never writes another key for rel.
	if full, err := source.ObjectKey(r.opts.Prefix, rel); err != nil || full != r.opts.Prefix+key {
		return "", false
	}
	if r.opts.Filter.SkipPath(rel) {
		return "", false
	}
	return rel, true
}

// check decides one object; ok means record op.
func (r *rebuilder) check(ctx context.Context, c candidate) (op checkpoint.FileOp, ok bool) {
	path := filepath.Join(r.opts.Src, filepath.FromSlash(c.rel))
	if reachable, err := r.dirReachable(source.Split(c.rel)); err != nil {
		r.fail(c.rel, err)
		return op, false
	} else if !reachable {
		r.noFile.Add(1)
		return op, false
	}
	var st syscall.Stat_t
	stat := syscall.Lstat
	if r.opts.FollowSymlinks {
		stat = syscall.Stat
	}
	if err := stat(path, &st); err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
			r.noFile.Add(1)
		} else {
			r.fail(c.rel, err)
		}
		return op, false
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		r.noFile.Add(1)
		return op, false
	}
	if st.Size != c.info.Size {
		r.size.Add(1)
		return op, false
	}
	info, err := r.store.Head(ctx, c.info.Key)
	if err != nil {
		if errors.Is(err, objstore.ErrNotExist) {
			r.noFile.Add(1) // deleted since the listing: nothing to record
		} else if ctx.Err() == nil {
			r.fail(c.rel, fmt.Errorf("head: %w", err))
		}
		return op, false
	}
	if mt, ok := storedMtime(info.Metadata); !ok || mt != st.Mtim.Nano() || info.Size != st.Size {
		r.mtime.Add(1)
		return op, false
	}
	crc, hasCRC := storedCRC32C(info.Checksum)
	if r.opts.Checksum {
		sum, err := fileCRC32C(path, st.Size)
		if err != nil {
			r.fail(c.rel, err)
			return op, false
		}
		if !hasCRC || sum != crc {
			r.sum.Add(1)
			return op, false
		}
	}
	rec := &checkpoint.FileRecord{
		Size: st.Size, MtimeNs: st.Mtim.Nano(), CtimeNs: st.Ctim.Nano(), Inode: st.Ino,
		CRC32C: crc, ETag: info.ETag, UploadedNs: info.Modified.UnixNano(),
	}
	if info.Modified.IsZero() {
		rec.UploadedNs = c.info.Modified.UnixNano()
	}
	r.bytes.Add(st.Size)
	return checkpoint.FileOp{Rel: c.rel, Rec: rec}, true
}

// dirReachable reports whether a sync's walk enters dir: every component a
// real directory (or, with FollowSymlinks, one reached through a link). A
// file the walk never sees must not be recorded: the next sync would count
// it as gone from the source, and --delete would remove its object.
func (r *rebuilder) dirReachable(dir, _ string) (bool, error) {
	if dir == "" {
		return true, nil
	}
	r.mu.Lock()
	known, seen := r.dirs[dir]
	r.mu.Unlock()
	if seen {
		return known, nil
	}
	parent, _ := source.Split(dir)
	ok, err := r.dirReachable(parent, "")
	if err != nil || !ok {
		return ok, err
	}
	var st syscall.Stat_t
	stat := syscall.Lstat
	if r.opts.FollowSymlinks {
		stat = syscall.Stat
	}
	switch err := stat(filepath.Join(r.opts.Src, filepath.FromSlash(dir)), &st); {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ENOTDIR):
		ok = false
	case err != nil:
		return false, err
	default:
		ok = st.Mode&syscall.S_IFMT == syscall.S_IFDIR
	}
	r.mu.Lock()
	r.dirs[dir] = ok
	r.mu.Unlock()
	return ok, nil
}

// record commits records in batches (sorted by ApplyFileOps). A failed
// commit stops the run at once.
func (r *rebuilder) record(recs <-chan checkpoint.FileOp, cancel context.CancelCauseFunc) error {
	var batch []checkpoint.FileOp
	var failed error
	flush := func() {
		if len(batch) == 0 || failed != nil {
			batch = batch[:0]
			return
		}
		if err := r.cp.ApplyFileOps(batch); err != nil {
			failed = fmt.Errorf("checkpoint %s: %w", r.cp.Path(), err)
			cancel(failed)
		} else {
			r.recorded.Add(int64(len(batch)))
		}
		batch = batch[:0]
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case op, ok := <-recs:
			if !ok {
				flush()
				return failed
			}
			batch = append(batch, op)
			if len(batch) >= r.opts.BatchSize {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}

func (r *rebuilder) progress() (stop func()) {
	if r.opts.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg gosync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				r.opts.Progress(r.counters())
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func (r *rebuilder) counters() RebuildCounters {
	return RebuildCounters{
		Listed: r.listed.Load(), Recorded: r.recorded.Load(), Errors: r.errorsCnt.Load(),
		NotMatching: r.noFile.Load() + r.size.Load() + r.mtime.Load() + r.sum.Load() + r.notOurs.Load(),
		Elapsed:     time.Since(r.start),
	}
}

func (r *rebuilder) fail(rel string, err error) {
	r.errorsCnt.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.failures) < r.opts.MaxListed {
		r.failures = append(r.failures, Failure{Path: rel, Reason: err.Error()})
	}
}

func (r *rebuilder) result() *RebuildResult {
	c := r.counters()
	r.mu.Lock()
	defer r.mu.Unlock()
	return &RebuildResult{
		Source: r.opts.Src, ObjectsListed: c.Listed, Recorded: c.Recorded, BytesRecorded: r.bytes.Load(),
		NotMatching: c.NotMatching, NoFile: r.noFile.Load(), SizeDiffers: r.size.Load(),
		MtimeDiffers: r.mtime.Load(), ChecksumDiffers: r.sum.Load(), NotFromSync: r.notOurs.Load(),
		Errors: c.Errors, Failures: r.failures, DurationSeconds: c.Elapsed.Seconds(),
	}
}

// storedMtime parses x-amz-meta-mtime, "seconds.nanoseconds" as files sync
// (and rclone) write it, into Unix nanoseconds.
func storedMtime(meta map[string]string) (int64, bool) {
	var v string
	for k, val := range meta {
		if strings.EqualFold(k, "mtime") {
			v = val
		}
	}
	secStr, frac, _ := strings.Cut(v, ".")
	sec, err := strconv.ParseInt(secStr, 10, 64)
	if err != nil || len(frac) > 9 {
		return 0, false
	}
	ns := int64(0)
	if frac != "" {
		f, err := strconv.ParseUint(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
		if err != nil {
			return 0, false
		}
		ns = int64(f)
	}
	return sec*1e9 + ns, true
}

// storedCRC32C decodes a full-object "crc32c:<base64>" checksum; composite
// multipart checksums ("…-N") are not the file's CRC32C.
func storedCRC32C(sum string) (uint32, bool) {
	b64, ok := strings.CutPrefix(sum, "crc32c:")
	if !ok || strings.Contains(b64, "-") {
		return 0, false
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) != 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(b), true
}

func fileCRC32C(path string, size int64) (uint32, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	h := crc32.New(objstore.Castagnoli)
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, err
	}
	if n != size {
		return 0, errors.New("file changed while it was read")
	}
	return h.Sum32(), nil
}
