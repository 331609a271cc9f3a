// Package checkpoint is kwickmig's durable state, one bbolt file (mode 0600)
// per kind of work in the migration's state directory (files.db, db.db; see
// cmd/kwickmig/state.go): per-file sync records, database copy progress,
// delta positions, and the history of runs that `kwickmig report` reads.
// While a command holds a file read-write it publishes <file>.live.json
// (live.go), so readers see it running.
//
// Layout (version 1), one bbolt bucket per concern:
//
//	meta     "version" → "1"; "bind/<section>" → identity the section belongs to
//	files    relative source path → FileRecord (binary, see record.go)
//	runs     big-endian sequence → RunRecord (JSON)
//	<other>  sections owned by other packages store JSON values (PutJSON)
//
// Nothing may be recorded before the far side confirmed it; callers enforce
// that, this package makes each write durable when its transaction commits.
package checkpoint

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Version is the checkpoint layout this release writes. Older layouts are
// migrated in Open; newer ones are refused.
const Version = 1

var (
	bucketMeta  = []byte("meta")
	bucketFiles = []byte("files")
	bucketRuns  = []byte("runs")
)

// ErrMismatch is matched by errors from Bind when a section already belongs
// to another source/destination pairing.
var ErrMismatch = errors.New("checkpoint belongs to another pairing")

// errNewer: the file is intact but written by a newer release.
var errNewer = errors.New("checkpoint is newer than this kwickmig")

// DB is an open checkpoint.
type DB struct {
	bolt *bolt.DB
	path string
	live *livePublisher // read-write opens with a registered LiveSource
	// filesAtOpen is the number of file records the open check decoded
	// (-1: not counted), so reports and live files need no second scan.
	// A write to the files section makes it unknown.
	filesAtOpen atomic.Int64
}

// FilesAtOpen is the number of recorded files when the checkpoint was
// opened (counted by the check every open makes); ok is false if unknown.
func (db *DB) FilesAtOpen() (n int, ok bool) {
	v := db.filesAtOpen.Load()
	return int(v), v >= 0
}

func checkVersion(meta *bolt.Bucket) error {
	if meta == nil {
		return fmt.Errorf("not a kwickmig checkpoint (no meta section)")
	}
	v, err := strconv.Atoi(string(meta.Get([]byte("version"))))
	if err != nil {
		return fmt.Errorf("checkpoint has an unreadable version %q", meta.Get([]byte("version")))
	}
	if v > Version {
		return fmt.Errorf("%w: layout version %d, this kwickmig writes %d: upgrade kwickmig", errNewer, v, Version)
	}
	return nil
}

// Path returns the file the checkpoint lives in.
func (db *DB) Path() string { return db.path }

// Close flushes and closes the checkpoint.
func (db *DB) Close() error {
	db.live.close()
	db.live = nil
	return db.bolt.Close()
}

// Bind ties a section ("files", "db", …) to an identity (for files: source
// root and destination URL; for db: source and target identities). The first
// Bind records it; a later Bind with another identity returns an error
// matching ErrMismatch that names both, so a checkpoint is never applied to
// the wrong pairing. Identities must not contain secrets.
func (db *DB) Bind(section, identity string) error {
	key := []byte("bind/" + section)
	return db.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		old := meta.Get(key)
		if old == nil {
			return meta.Put(key, []byte(identity))
		}
		if string(old) != identity {
			return fmt.Errorf("%w: checkpoint %s records %s %q, not %q (use another --checkpoint file)",
				ErrMismatch, db.path, section, old, identity)
		}
		return nil
	})
}

// Bound returns the identity a section is bound to, or "".
func (db *DB) Bound(section string) (string, error) {
	var id string
	err := db.view(func(tx *bolt.Tx) error {
		id = string(tx.Bucket(bucketMeta).Get([]byte("bind/" + section)))
		return nil
	})
	return id, err
}

// PutJSON stores v as JSON under section/key, creating the section.
func (db *DB) PutJSON(section, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return db.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(section))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), data)
	})
}

// GetJSON loads section/key into v. It reports false if absent.
func (db *DB) GetJSON(section, key string, v any) (bool, error) {
	var data []byte
	err := db.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(section)); b != nil {
			if d := b.Get([]byte(key)); d != nil {
				data = append([]byte(nil), d...)
			}
		}
		return nil
	})
	if err != nil || data == nil {
		return false, err
	}
	return true, json.Unmarshal(data, v)
}

// ForEachJSON calls fn for every key of a section in key order. raw is only
// valid during the call.
func (db *DB) ForEachJSON(section string, fn func(key string, raw []byte) error) error {
	return db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(section))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error { return callOut(func() error { return fn(string(k), v) }) })
	})
}

// Delete removes section/key; absent keys are not an error.
func (db *DB) Delete(section, key string) error {
	return db.update(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(section)); b != nil {
			return b.Delete([]byte(key))
		}
		return nil
	})
}

// DeleteSection removes a whole section and its binding.
func (db *DB) DeleteSection(section string) error {
	if section == string(bucketFiles) {
		db.filesAtOpen.Store(-1)
	}
	return db.update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte(section)); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return err
		}
		return tx.Bucket(bucketMeta).Delete([]byte("bind/" + section))
	})
}

// RunRecord is one command's run, appended at its end for `kwickmig report`.
type RunRecord struct {
	Command  string    `json:"command"` // e.g. "files sync", "db copy"
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	ExitCode int       `json:"exit_code"`
	// Error is why the run failed or stopped: one line, passwords removed.
	Error   string         `json:"error,omitempty"`
	Summary map[string]any `json:"summary,omitempty"` // the command's report fields
	// Version is the kwickmig that ran (filled from ProgramVersion).
	Version string `json:"version,omitempty"`
}

// ProgramVersion is recorded in every run record; main sets it.
var ProgramVersion string

// AppendRun adds a run record to the history.
func (db *DB) AppendRun(r RunRecord) error {
	if r.Version == "" {
		r.Version = ProgramVersion
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return db.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRuns)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		return b.Put(binary.BigEndian.AppendUint64(nil, seq), data)
	})
}

// Runs calls fn for each run record, oldest first.
func (db *DB) Runs(fn func(RunRecord) error) error {
	return db.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRuns).ForEach(func(_, v []byte) error {
			var r RunRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return damaged(db.path, fmt.Sprintf("run record: %v", err))
			}
			return callOut(func() error { return fn(r) })
		})
	})
}
