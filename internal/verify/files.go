package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/source"
)

// FileStore is what verify files needs from the bucket: the Store plus a
// one-level listing (s3store.Store has both).
type FileStore interface {
	objstore.Store
	objstore.DirLister
}

// FilesOptions configure VerifyFiles. Zero values get defaults in fill().
type FilesOptions struct {
	Src            string // source root
	Prefix         string // the store's key prefix ("" or ending in "/"), for ObjectKey's length limit
	Walkers        int    // directories read and key ranges listed concurrently; default 32
	Ranges         int    // subtrees to split the tree into before listing flat; default Walkers
	Filter         source.Filter
	Concurrency    int  // checksum/deep workers; default 32
	Checksum       bool // compare stored checksums with a fresh hash of each source file
	Deep           bool // download and compare bytes
	SamplePct      float64
	FollowSymlinks bool
	MaxListed      int // differences kept for the report (the counts are always exact); default 1000

	// Full re-proves every file's content; otherwise a --checksum run after
	// a complete full one re-proves only what changed since (proof.go).
	Full bool
	// SampleProvenPct re-proves this random percentage of the files whose
	// earlier proof still holds.
	SampleProvenPct float64

	// Progress, if set, is called every second with the counters so far.
	Progress func(FilesCounters)
}

func (o *FilesOptions) fill() {
	if o.Walkers <= 0 {
		o.Walkers = 32
	}
	if o.Ranges <= 0 {
		o.Ranges = o.Walkers
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 32
	}
	if o.MaxListed <= 0 {
		o.MaxListed = 1000
	}
	if o.Deep && o.SamplePct <= 0 {
		o.SamplePct = 100
	}
}

// FilesCounters is the running state, for progress displays.
type FilesCounters struct {
	Files, Objects, Differences, ContentChecked int64
	Elapsed                                     time.Duration
	ProvenEarlier                               int64 // carried over from an earlier proof
}

// VerifyFiles compares the tree under o.Src with the bucket. cp, if not nil,
// is the files sync checkpoint: it tells a file that changed after its last
// sync (or was never synced, or was deleted since) apart from a real
// mismatch. It returns an error only when the verification could not run;
// unreadable directories and files are counted as errors in the result.
//
// How: the top of the tree is read and listed one directory at a time
// (ListObjectsV2 with a delimiter), level by level, until there are at
// least o.Ranges subtrees; then each subtree is one key range, listed flat
// (no delimiter, 1,000 keys a request) while its directories are read
// depth-first in key order, and the two sorted streams are merged (flat.go).
// Up to o.Walkers ranges run at once.
//
// Cost: about N/1000 list requests plus one per directory of the top
// levels (for the receipts layout, <store>/<yyyy>/<mm>/<dd>/, three levels:
// about 100 requests), none per object; subtrees missing from the bucket
// are not listed at all. With Checksum, one HEAD per file and a read of the
// file; with Deep, one GET per file. Memory: per range, the directory path
// being read (one sorted listing per level) and up to rangeBuffer listed
// objects, plus the capped list of differences: flat in N.
func VerifyFiles(ctx context.Context, st FileStore, cp *checkpoint.DB, o FilesOptions) (*FilesResult, error) {
	o.fill()
	v := &filesVerifier{st: st, cp: cp, o: o, res: newTally(o), absent: map[string]bool{}}
	start := time.Now()
	if err := v.startProofs(start); err != nil {
		return nil, err
	}
	v.res.Full = !v.incremental
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	jobs := make(chan contentJob, o.Concurrency*4)
	var workers sync.WaitGroup
	if o.Checksum || o.Deep {
		for range o.Concurrency {
			workers.Go(func() {
				for j := range jobs {
					v.checkContent(ctx, j)
				}
			})
		}
	}
	stopProgress := v.progress(start)

	err := v.run(ctx, jobs)
	close(jobs)
	workers.Wait()
	stopProgress()
	v.res.finish(time.Since(start))
	v.res.FilesChecked, v.res.ObjectsListed, v.res.ContentChecked = v.files.Load(), v.objects.Load(), v.content.Load()
	v.res.ProvenEarlier, v.res.ProvenResampled = v.provenEarlier.Load(), v.resampled.Load()
	if v.proofs != nil {
		v.proofs.finish(v.res.FilesResult, v.fullProof, err == nil)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			v.res.Interrupted = true
		}
		return v.res.FilesResult, err
	}
	return v.res.FilesResult, nil
}

type filesVerifier struct {
	st  FileStore
	cp  *checkpoint.DB
	o   FilesOptions
	res *tally

	files, objects, content atomic.Int64

	// proofs is nil without a checkpoint or a content mode; incremental
	// says earlier proofs are carried over (proof.go).
	proofs                   *proofs
	incremental, fullProof   bool
	provenEarlier, resampled atomic.Int64

	// absent holds directories the parent's listing proved to have no
	// objects: their own listing is skipped. Entries are removed when the
	// directory is visited, so the map holds only directories in flight.
	mu     sync.Mutex
	absent map[string]bool

	listers chan struct{} // one slot per flat listing in flight (flat.go)
	dirs    atomic.Int64  // directories whose records were read
}

// dirRecords reads the checkpoint records of one directory. Every 32
// directories it drops the checkpoint pages read so far from RSS, as files
// sync does (checkpoint.DropCachedPages): reading a million records would
// otherwise keep the whole mapped file resident, and memory would grow
// with N.
func (v *filesVerifier) dirRecords(rel string) ([]checkpoint.DirEntry, error) {
	if v.cp == nil {
		return nil, nil
	}
	if v.dirs.Add(1)%32 == 0 {
		_ = v.cp.DropCachedPages()
	}
	var recs []checkpoint.DirEntry
	if err := v.cp.ListDir(rel, func(e checkpoint.DirEntry) error {
		recs = append(recs, e)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	return recs, nil
}

// progress reports the counters every second until the returned func is called.
func (v *filesVerifier) progress(start time.Time) func() {
	if v.o.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				v.o.Progress(FilesCounters{Files: v.files.Load(), Objects: v.objects.Load(),
					Differences: v.res.differences(), ContentChecked: v.content.Load(), ProvenEarlier: v.provenEarlier.Load(),
					Elapsed: time.Since(start)})
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// dir merges one source directory with its listing and its records.
func (v *filesVerifier) dir(ctx context.Context, d *source.Dir, jobs chan<- contentJob) error {
	dirKey, err := dirKey(d.Rel)
	if err != nil {
		// A key over the length limit: every file below it is reported by
		// its own ObjectKey call; nothing can be listed.
		dirKey = ""
	}
	v.mu.Lock()
	skipList := v.absent[d.Rel]
	delete(v.absent, d.Rel)
	v.mu.Unlock()

	var objs []objstore.DirEntry
	if !skipList && err == nil {
		err := v.st.ListDir(ctx, dirKey, func(e objstore.DirEntry) error {
			objs = append(objs, e)
			return nil
		})
		v.res.listRequests.Add(1 + int64(len(objs))/1000)
		if err != nil {
			return fmt.Errorf("list %s: %w", dirKey, err)
		}
	}
	recs, err := v.dirRecords(d.Rel)
	if err != nil {
		return err
	}
	return v.merge(ctx, d, dirKey, objs, recs, jobs)
}

// dirKey is the key prefix of a source directory ("" for the root).
func dirKey(rel string) (string, error) {
	if rel == "" {
		return "", nil
	}
	k, err := source.ObjectKey("", rel)
	if err != nil {
		return "", err
	}
	return k + "/", nil
}

// markAbsent records that a source directory has no objects in the bucket.
func (v *filesVerifier) markAbsent(rel string) {
	v.mu.Lock()
	v.absent[rel] = true
	v.mu.Unlock()
}

// sortEntries orders directory entries by (name, is-directory): the order
// both sides of the merge use.
func cmpEntry(aName string, aDir bool, bName string, bDir bool) int {
	if c := cmpString(aName, bName); c != 0 {
		return c
	}
	switch {
	case aDir == bDir:
		return 0
	case !aDir:
		return -1
	default:
		return 1
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func sortObjects(objs []objstore.DirEntry) {
	slices.SortFunc(objs, func(a, b objstore.DirEntry) int { return cmpEntry(a.Name, a.IsDir, b.Name, b.IsDir) })
}
