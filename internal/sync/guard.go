package sync

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/source"
)

// The guards in this file stand between "the source looks different" and
// "delete objects": an unmounted share, a missing sub-mount or a mass
// deletion must never become a wiped bucket (DESIGN.md, "deleting is the
// dangerous verb").

// ErrSourceChanged is matched by the error of a run refused because the
// source root is not the one the checkpoint was made from (or is empty).
var ErrSourceChanged = errors.New("source changed")

// ErrTooManyDeletes is matched by the error of a run whose deletions
// exceeded --max-delete (nothing was deleted).
var ErrTooManyDeletes = errors.New("too many deletions")

const identitySection, identityKey = "files-source", "identity"

// checkSource compares the source root's identity with the one the
// checkpoint recorded, and refuses an empty root when files are recorded.
// On success (and not in a dry run) it records the current identity.
func (s *Syncer) checkSource() error {
	if s.cp == nil {
		return nil // nothing recorded: nothing to protect
	}
	cur, rec, found, err := compareSource(s.cp, s.opts.Src, s.opts.AcceptSourceChange)
	if err != nil {
		return err
	}
	if s.opts.DryRun || (found && identityEqual(rec, cur)) {
		return nil
	}
	return s.cp.PutJSON(identitySection, identityKey, cur)
}

// CheckSource is checkSource for readers (verify files): it refuses a
// source root that is not the one cp recorded, or that is empty (or has an
// empty mount) where cp records files, and changes nothing. The error
// matches ErrSourceChanged.
func CheckSource(cp *checkpoint.DB, src string) error {
	_, _, _, err := compareSource(cp, src, false)
	var sc *sourceChangedError
	if errors.As(err, &sc) {
		sc.reader = true
	}
	return err
}

func compareSource(cp *checkpoint.DB, src string, accept bool) (cur, rec source.Identity, found bool, err error) {
	cur, err = source.ReadIdentity(src)
	if err != nil {
		return cur, rec, false, fmt.Errorf("source %s: %w", src, err)
	}
	found, err = cp.GetJSON(identitySection, identityKey, &rec)
	if err != nil {
		return cur, rec, false, fmt.Errorf("checkpoint %s: %w", cp.Path(), err)
	}
	if accept {
		return cur, rec, found, nil
	}
	hasRecords := func(rel string) bool {
		any := false
		_ = cp.ListDir(rel, func(e checkpoint.DirEntry) error { any = true; return errStop })
		return any
	}
	if found {
		if err := source.Compare(rec, cur, hasRecords); err != nil {
			return cur, rec, found, &sourceChangedError{src: src, why: err.Error()}
		}
	}
	// An empty root, or an empty mount below it, while the checkpoint
	// records files there: a share that is not (yet) mounted, or one that
	// came back empty. Same identity or not, nothing there may be taken for
	// deleted.
	roots := []string{""}
	for _, m := range cur.Mounts {
		roots = append(roots, m.Rel)
	}
	for _, rel := range roots {
		if !hasRecords(rel) {
			continue
		}
		empty, err := dirEmpty(filepath.Join(src, rel))
		if err != nil {
			return cur, rec, found, fmt.Errorf("source %s: %w", src, err)
		}
		if empty && rel == "" {
			return cur, rec, found, &sourceChangedError{src: src, why: "the source root is empty but the checkpoint records files (an unmounted or not yet mounted share?)"}
		}
		if empty {
			return cur, rec, found, &sourceChangedError{src: src, why: fmt.Sprintf("the mount %s is empty but the checkpoint records files in it (a share that is not mounted, or came back empty?)", rel)}
		}
	}
	return cur, rec, found, nil
}

type sourceChangedError struct {
	src, why string
	reader   bool // verify: nothing is uploaded or deleted anyway
}

func (e *sourceChangedError) Error() string {
	if e.reader {
		return fmt.Sprintf("source %s: %s; not verifying against it (check the mount; --no-checkpoint verifies whatever is there)", e.src, e.why)
	}
	return fmt.Sprintf("source %s: %s; nothing was uploaded or deleted (check the mount; --accept-source-change adopts the new source on purpose)", e.src, e.why)
}

func (e *sourceChangedError) Is(target error) bool { return target == ErrSourceChanged }

func identityEqual(a, b source.Identity) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

var errStop = errors.New("stop")

func dirEmpty(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if len(names) > 0 {
		return false, nil
	}
	if err != nil && err != io.EOF {
		return false, err
	}
	return true, nil
}

// DeleteLimit is --max-delete: at most N objects, or Percent of the
// recorded files. The zero value is the default, the larger of 100 objects
// and 1% of the recorded files.
type DeleteLimit struct {
	Set       bool
	N         int64
	IsPercent bool
	Percent   float64
}

// ParseDeleteLimit parses "N" or "P%" ("" is the default).
func ParseDeleteLimit(s string) (DeleteLimit, error) {
	bad := fmt.Errorf("--max-delete %q: want a number of objects or a percentage of the recorded files like 5%%", s)
	if s == "" {
		return DeleteLimit{}, nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || !(v >= 0 && v <= 100) {
			return DeleteLimit{}, bad
		}
		return DeleteLimit{Set: true, IsPercent: true, Percent: v}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return DeleteLimit{}, bad
	}
	return DeleteLimit{Set: true, N: n}, nil
}

// resolve turns the limit into a number of objects and a description;
// recorded is called only when the answer depends on it (counting records
// reads the whole files section).
func (l DeleteLimit) resolve(recorded func() (int64, error)) (int64, string, error) {
	if l.Set && !l.IsPercent {
		return l.N, fmt.Sprint(l.N), nil
	}
	n, err := recorded()
	if err != nil {
		return 0, "", err
	}
	if l.Set {
		v := int64(float64(n) * l.Percent / 100)
		return v, fmt.Sprintf("%d: %g%% of %d recorded files", v, l.Percent, n), nil
	}
	v := max(100, n/100)
	return v, fmt.Sprintf("%d: the larger of 100 and 1%% of %d recorded files", v, n), nil
}
