package verify

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// File difference kinds. The first five are real mismatches; the "since
// sync" kinds are the source moving on after files sync ran (run it
// again); errors are files that could not be checked.
const (
	KindMissing          = "missing"            // a source file has no object
	KindExtra            = "extra"              // an object has no source file (and none was synced)
	KindSize             = "size"               // sizes differ
	KindChecksum         = "checksum"           // stored checksum differs from the file's hash
	KindContent          = "content"            // bytes differ (--deep)
	KindChanged          = "changed_since_sync" // the file changed after its last sync
	KindNotSynced        = "not_yet_synced"     // the file was never synced
	KindDeletedSinceSync = "deleted_since_sync" // the object's file was synced, then deleted
	KindError            = "error"              // could not be checked (unreadable, key too long)
)

// FileDiff is one file or object that does not match.
type FileDiff struct {
	Kind       string `json:"kind"`
	Path       string `json:"path"`          // relative source path
	Key        string `json:"key,omitempty"` // object key relative to the destination prefix
	SourceSize int64  `json:"source_size,omitempty"`
	ObjectSize int64  `json:"object_size,omitempty"`
	Detail     string `json:"detail,omitempty"`
}

// FilesResult is verify files' report (also its JSON form).
type FilesResult struct {
	Source         string           `json:"source"`
	Destination    string           `json:"destination"`
	Mode           string           `json:"mode"` // size, checksum, deep, deep-sample
	SamplePct      float64          `json:"sample_pct,omitempty"`
	FilesChecked   int64            `json:"files_checked"`
	ObjectsListed  int64            `json:"objects_listed"`
	Matched        int64            `json:"matched"`
	Mismatches     int64            `json:"mismatches"`         // missing + extra + size + checksum + content
	ChangedSince   int64            `json:"changed_since_sync"` // changed, not yet synced, deleted since sync
	Errors         int64            `json:"errors"`
	Counts         map[string]int64 `json:"counts"`  // per kind
	Skipped        int64            `json:"skipped"` // symlinks, FIFOs, sockets, devices (files sync skips them too)
	ContentChecked int64            `json:"content_checked"`
	NoStoredSum    int64            `json:"objects_without_checksum"`

	// Full is false when files whose earlier proof still holds were
	// carried over instead of re-read (proof.go): ProvenEarlier of them,
	// from the runs in ProvenEarlierBy; FullProofAt is when the complete
	// full verification they build on started.
	Full            bool        `json:"full"`
	FullReason      string      `json:"full_reason,omitempty"`
	ProvenEarlier   int64       `json:"proven_earlier"`
	ProvenEarlierBy []ProvenRef `json:"proven_earlier_by,omitempty"`
	FullProofAt     *time.Time  `json:"full_proof_at,omitempty"`
	SampleProvenPct float64     `json:"sample_proven_pct,omitempty"`
	ProvenResampled int64       `json:"proven_resampled,omitempty"` // proven earlier, re-proven by the sample (in content_checked)
	ProofsRecorded  int64       `json:"proofs_recorded,omitempty"`  // records stamped by this run
	VerificationRun uint64      `json:"verification_run,omitempty"`
	ProofError      string      `json:"proof_error,omitempty"`

	// ComparedBy counts the files whose content was compared each way
	// (Method*: etag-md5, crc32c, crc32c-composite, sha256, bytes).
	ComparedBy map[string]int64 `json:"compared_by,omitempty"`
	// StoredSumWrong counts objects whose stored checksum disagreed with
	// the file while their bytes matched (a server computing it otherwise).
	StoredSumWrong  int64      `json:"stored_checksum_wrong,omitempty"`
	BytesRead       int64      `json:"bytes_read"`
	BytesDownloaded int64      `json:"bytes_downloaded"`
	ListRequests    int64      `json:"list_requests"`
	DurationSeconds float64    `json:"duration_seconds"`
	Interrupted     bool       `json:"interrupted,omitempty"`
	Differences     []FileDiff `json:"differences"`
	Truncated       int64      `json:"differences_not_listed,omitempty"`
}

// tally collects a FilesResult from many goroutines.
type tally struct {
	*FilesResult
	mu                                                                     sync.Mutex
	max                                                                    int
	matched, skipped, listRequests, bytesRead, bytesDownloaded, noChecksum atomic.Int64
	ndiff                                                                  atomic.Int64
	storedSumWrong                                                         atomic.Int64
	byMethod                                                               map[string]int64 // under mu
}

// comparedBy counts one content comparison made by method.
func (r *tally) comparedBy(method string) {
	r.mu.Lock()
	r.byMethod[method]++
	r.mu.Unlock()
}

func newTally(o FilesOptions) *tally {
	r := &FilesResult{Source: o.Src, Mode: "size", Counts: map[string]int64{}, Full: true}
	switch {
	case o.Deep && o.SamplePct < 100:
		r.Mode, r.SamplePct = "deep-sample", o.SamplePct
	case o.Deep:
		r.Mode = "deep"
	case o.Checksum:
		r.Mode = "checksum"
	}
	if o.Deep && o.Checksum && o.SamplePct < 100 {
		r.Mode = "checksum+deep-sample"
	}
	return &tally{FilesResult: r, max: o.MaxListed, byMethod: map[string]int64{}}
}

func (r *tally) add(d FileDiff) {
	r.ndiff.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Counts[d.Kind]++
	if len(r.Differences) < r.max {
		r.Differences = append(r.Differences, d)
	} else {
		r.Truncated++
	}
}

func (r *tally) differences() int64 { return r.ndiff.Load() }

// finish fills the totals once the workers are done.
func (r *tally) finish(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.DurationSeconds = d.Seconds()
	r.Matched = r.matched.Load()
	r.Skipped = r.skipped.Load()
	r.ListRequests = r.listRequests.Load()
	r.BytesRead = r.bytesRead.Load()
	r.BytesDownloaded = r.bytesDownloaded.Load()
	r.NoStoredSum = r.noChecksum.Load()
	r.StoredSumWrong = r.storedSumWrong.Load()
	if len(r.byMethod) > 0 {
		r.ComparedBy = r.byMethod
	}
	r.Mismatches = r.Counts[KindMissing] + r.Counts[KindExtra] + r.Counts[KindSize] + r.Counts[KindChecksum] + r.Counts[KindContent]
	r.ChangedSince = r.Counts[KindChanged] + r.Counts[KindNotSynced] + r.Counts[KindDeletedSinceSync]
	r.Errors = r.Counts[KindError]
	slices.SortFunc(r.Differences, func(a, b FileDiff) int {
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	if r.Differences == nil {
		r.Differences = []FileDiff{}
	}
}

// OK reports whether everything matched.
func (r *FilesResult) OK() bool {
	return r.Mismatches == 0 && r.ChangedSince == 0 && r.Errors == 0 && !r.Interrupted
}
