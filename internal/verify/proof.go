package verify

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/source"
)

// Incremental verification (verify files --checksum after a full one).
//
// A content check that finds a file equal to its object stamps the file's
// checkpoint record with the run that proved it, how (checksum or deep) and
// the object's LastModified in the listing (checkpoint.Verified). A later
// --checksum run, once a complete full one is recorded, re-proves by content
// only the files whose proof no longer holds, and carries the rest over.
// A proof holds while all of these are true:
//
//   - the record is the one proven: files sync builds a fresh record (no
//     stamp) for every upload, so a re-uploaded file is always re-proven;
//   - the file's size, mtime, ctime and inode are still the record's (files
//     sync's own test; ctime cannot be set back, so a same-size rewrite with
//     the mtime restored is still seen);
//   - the object in this run's listing has the record's size and ETag and the
//     LastModified proven: S3 objects are immutable, any overwrite (PUT,
//     copy, multipart, a restored version) creates a new object with a new
//     LastModified, and for different bytes a different ETag, so an object
//     rewritten through S3 is always re-proven;
//   - the run that proved it is recorded in the checkpoint.
//
// The whole-set checks stay full in every run: every source file is walked,
// every object listed, and missing, extra and size differences are found
// for all of them. What incremental does not re-read is the bytes of a file
// and object that are both unchanged since they were proven; the only thing
// that could differ there is corruption below S3's API (bit rot on the
// provider's disks, which S3 repairs from its own checksums) or a source
// changed without any change to its stat. --sample-proven re-proves a
// random share of them anyway, --deep always downloads everything, and
// --full re-proves every file.
//
// Correctness never depends on which runs came before: each file carries
// its own proof, so a run with --include, an interrupted one or a rebuilt
// checkpoint only means more files are re-proven.

// proofSection is the checkpoint section that keeps the verification runs
// whose stamps the file records carry.
const proofSection = "verify_files"

// ProofRun is one verification run that stamped proofs.
type ProofRun struct {
	Run      uint64    `json:"run"`
	Started  time.Time `json:"started"`
	Mode     string    `json:"mode"`
	Full     bool      `json:"full"`     // every file re-proven by content
	Complete bool      `json:"complete"` // finished (not interrupted, could run)
	Proven   int64     `json:"proven,omitempty"`
}

// ProvenRef says how many files a run carried over from one earlier run.
type ProvenRef struct {
	Run     uint64    `json:"run"`
	Started time.Time `json:"started"`
	Mode    string    `json:"mode"`
	Files   int64     `json:"files"`
}

// proofs is a run's view of the checkpoint's proofs and its own stamps.
type proofs struct {
	cp       *checkpoint.DB
	runs     map[uint64]ProofRun
	lastFull *ProofRun
	me       ProofRun
	need     checkpoint.Level // what a carried-over proof must be
	sample   float64          // --sample-proven, percent

	mu      sync.Mutex
	carried map[uint64]int64 // per earlier run
	pending []checkpoint.Stamp
	stamped int64
	err     error // first failure to record stamps (reported, not fatal)
}

const stampBatch = 20_000

// openProofs reads the recorded runs and numbers this one.
func openProofs(cp *checkpoint.DB, mode string, started time.Time) (*proofs, error) {
	p := &proofs{cp: cp, runs: map[uint64]ProofRun{}, carried: map[uint64]int64{}}
	var last uint64
	if _, err := cp.GetJSON(proofSection, "last_run", &last); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	var full uint64
	if _, err := cp.GetJSON(proofSection, "last_full", &full); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	err := cp.ForEachJSON(proofSection, func(key string, raw []byte) error {
		if len(key) < 4 || key[:4] != "run/" {
			return nil
		}
		var r ProofRun
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("checkpoint: %s %s: %w", proofSection, key, err)
		}
		p.runs[r.Run] = r
		return nil
	})
	if err != nil {
		return nil, err
	}
	if r, ok := p.runs[full]; ok && r.Full && r.Complete {
		p.lastFull = &r
	}
	p.me = ProofRun{Run: last + 1, Started: started.UTC(), Mode: mode}
	if err := cp.PutJSON(proofSection, "last_run", p.me.Run); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	return p, p.save()
}

func (p *proofs) save() error {
	return p.cp.PutJSON(proofSection, fmt.Sprintf("run/%016d", p.me.Run), p.me)
}

// holds reports whether a file's recorded proof still holds for the file
// the walk saw and the object the listing returned (see the top of this
// file), and counts it as carried over if it does.
func (p *proofs) holds(e *source.Entry, info objstore.ObjectInfo, rec *checkpoint.FileRecord) bool {
	pr := rec.Verified
	if pr.Level < p.need || !unchanged(e, rec) || rec.ETag == "" || info.ETag != rec.ETag ||
		info.Size != rec.Size || info.Modified.IsZero() || info.Modified.UnixNano() != pr.ObjModNs {
		return false
	}
	if _, ok := p.runs[pr.Run]; !ok || pr.Run >= p.me.Run {
		return false
	}
	return true
}

// resample reports whether a proven file is re-proven anyway (--sample-proven).
func (p *proofs) resample() bool {
	return p.sample > 0 && rand.Float64()*100 < p.sample
}

func (p *proofs) carry(run uint64) {
	p.mu.Lock()
	p.carried[run]++
	p.mu.Unlock()
}

// stamp records that j's content was proven at level, if what was proven
// is exactly the record's file and the listed object.
func (p *proofs) stamp(j contentJob, level checkpoint.Level) {
	if j.rec == nil || !unchanged(&j.entry, j.rec) || j.rec.ETag == "" || j.etag != j.rec.ETag || j.mod == 0 {
		return
	}
	rec := *j.rec
	rec.Verified = checkpoint.Verified{}
	s := checkpoint.Stamp{Rel: j.rel, Rec: rec, V: checkpoint.Verified{Run: p.me.Run, Level: level, ObjModNs: j.mod}}
	p.mu.Lock()
	p.pending = append(p.pending, s)
	var batch []checkpoint.Stamp
	if len(p.pending) >= stampBatch {
		batch, p.pending = p.pending, nil
	}
	p.mu.Unlock()
	if batch != nil {
		p.write(batch)
	}
}

func (p *proofs) write(batch []checkpoint.Stamp) {
	n, err := p.cp.StampVerified(batch)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stamped += int64(n)
	if err != nil && p.err == nil {
		p.err = err
	}
}

// finish writes the last stamps and records the run; complete is whether
// it ran to its end. It fills the result's proof fields.
func (p *proofs) finish(res *FilesResult, full, complete bool) {
	p.write(p.pending)
	p.pending = nil
	p.me.Full, p.me.Complete, p.me.Proven = full, complete, p.stamped
	if err := p.save(); err != nil && p.err == nil {
		p.err = err
	}
	if full && complete {
		if err := p.cp.PutJSON(proofSection, "last_full", p.me.Run); err != nil && p.err == nil {
			p.err = err
		}
	}
	res.ProofsRecorded = p.stamped
	res.VerificationRun = p.me.Run
	if p.err != nil {
		res.ProofError = "recording proofs in the checkpoint: " + oneLine(p.err)
	}
	if p.lastFull != nil && !full {
		t := p.lastFull.Started
		res.FullProofAt = &t
	}
	for run, n := range p.carried {
		r := p.runs[run]
		res.ProvenEarlierBy = append(res.ProvenEarlierBy, ProvenRef{Run: run, Started: r.Started, Mode: r.Mode, Files: n})
	}
	sort.Slice(res.ProvenEarlierBy, func(i, k int) bool { return res.ProvenEarlierBy[i].Run < res.ProvenEarlierBy[k].Run })
}

// startProofs decides whether this run is incremental and numbers it.
// Only --checksum runs carry proofs over: --deep is the check that reads
// what the store holds now, and a size-only run proves no content.
func (v *filesVerifier) startProofs(start time.Time) error {
	o := &v.o
	if v.cp == nil || (!o.Checksum && !o.Deep) {
		if o.Checksum || o.Deep {
			v.res.FullReason = "no checkpoint"
		}
		return nil
	}
	p, err := openProofs(v.cp, v.res.Mode, start)
	if err != nil {
		return err
	}
	p.need, p.sample = checkpoint.LevelChecksum, o.SampleProvenPct
	v.proofs = p
	v.res.VerificationRun = p.me.Run
	switch {
	case o.Deep:
		v.res.FullReason = "--deep reads every object"
	case o.Full:
		v.res.FullReason = "--full"
	case p.lastFull == nil:
		v.res.FullReason = "no complete full verification recorded in the checkpoint"
	default:
		v.incremental = true
		v.res.SampleProvenPct = o.SampleProvenPct
	}
	// A full proof: every file's content compared.
	v.fullProof = !v.incremental && (o.Checksum || o.SamplePct >= 100)
	return nil
}
