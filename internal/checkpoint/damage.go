package checkpoint

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// ErrDamaged is matched by every error about a checkpoint file that is not
// an intact kwickmig checkpoint: truncated, overwritten, empty, or another
// program's file. Such a file is never adopted, repaired or overwritten.
var ErrDamaged = errors.New("checkpoint is damaged")

// ErrInUse is matched when another process holds the checkpoint's lock (a
// files sync, db copy, … running on it right now).
var ErrInUse = errors.New("checkpoint is in use by another kwickmig process")

// DamagedError is the error matching ErrDamaged: the file and what is
// wrong with it, for callers that word their own way out.
type DamagedError struct{ Path, Reason string }

func (e *DamagedError) Error() string {
	return fmt.Sprintf("checkpoint %s is damaged (%s); move it aside and run "+
		"`kwickmig files sync --rebuild-checkpoint --src DIR --dst s3://BUCKET[/PREFIX] --checkpoint %s` "+
		"to rebuild its file records from the bucket", e.Path, e.Reason, e.Path)
}

func (e *DamagedError) Is(target error) bool { return target == ErrDamaged }

// damaged builds the one-line ErrDamaged error; reason comes from bbolt,
// a panic or a check, so it is flattened and capped to keep it one line.
func damaged(path, reason string) error {
	reason = strings.Join(strings.Fields(reason), " ")
	if len(reason) > 200 {
		reason = reason[:200] + "…"
	}
	return &DamagedError{Path: path, Reason: reason}
}

// callerPanic carries a panic raised by a caller's callback through the
// recover in protect, so a bug in the caller is not reported as a damaged
// file.
type callerPanic struct{ v any }

// callOut runs a caller's callback from inside a transaction.
func callOut(fn func() error) error {
	defer func() {
		if r := recover(); r != nil {
			panic(callerPanic{r})
		}
	}()
	return fn()
}

// protect runs fn against the bbolt file. bbolt trusts its pages: on a
// damaged file it panics on assertions ("page N: expected …") and reads
// through wild page ids, a memory fault that would otherwise kill the
// process with a goroutine dump. Both become ErrDamaged here. bbolt rolls
// the transaction back in its own deferred handlers, so the DB stays usable
// (and closable) after a recovered panic.
func protect(path string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if cp, ok := r.(callerPanic); ok {
			panic(cp.v)
		}
		err = damaged(path, fmt.Sprint(r))
	}()
	return fn()
}

func (db *DB) view(fn func(*bolt.Tx) error) error {
	return protect(db.path, func() error { return db.bolt.View(fn) })
}

func (db *DB) update(fn func(*bolt.Tx) error) error {
	return protect(db.path, func() error { return db.bolt.Update(fn) })
}
