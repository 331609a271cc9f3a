package checkpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// lockTimeout bounds the wait for another process's lock on the file.
const lockTimeout = 2 * time.Second

// Open opens the checkpoint at path, or creates it if no file exists there.
// A file that exists is checked before it is used (see checkFile): a
// damaged, empty or foreign file is refused with an error matching
// ErrDamaged and left exactly as it is. A second process opening the same
// file waits up to 2 s and then fails with an error matching ErrInUse (bbolt
// holds an exclusive file lock), so two syncs can never interleave their
// records.
func Open(path string) (*DB, error) {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		if err := create(path); err != nil {
			return nil, err
		}
	}
	ro, err := openChecked(path, lockTimeout)
	if err != nil {
		return nil, err
	}
	// The read-only handle's shared lock kept writers out while the file
	// was checked; now take the exclusive one.
	ro.bolt.Close()
	b, err := boltOpen(path, false, lockTimeout)
	if err != nil {
		return nil, err
	}
	// Nothing could change the file between the check and the exclusive
	// lock but another writer, which the check's shared lock kept out
	// until the moment it was released: the count is the file's.
	db := &DB{bolt: b, path: path}
	db.filesAtOpen.Store(ro.filesAtOpen.Load())
	if err := db.init(); err != nil {
		b.Close()
		return nil, err
	}
	db.live = startLive(db)
	return db, nil
}

// OpenReadOnly opens an existing checkpoint without creating or changing it
// (for --dry-run and reports), after the same checks as Open.
func OpenReadOnly(path string) (*DB, error) {
	return OpenReadOnlyWait(path, lockTimeout)
}

// OpenReadOnlyWait is OpenReadOnly waiting at most wait for a writer's
// lock (report: a running command is shown from its live file instead).
func OpenReadOnlyWait(path string, wait time.Duration) (*DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open checkpoint %s: %w", path, err)
	}
	return openChecked(path, wait)
}

// openChecked opens path read-only (a shared lock: no writer can change the
// file meanwhile) and checks it.
func openChecked(path string, wait time.Duration) (*DB, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint %s: %w", path, err)
	}
	switch {
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("checkpoint %s is not a regular file", path)
	case st.Size() == 0:
		// bbolt would initialise an empty file as a new database; an empty
		// file where a checkpoint should be is a lost one (a failed copy, a
		// truncation), and adopting it would mean re-uploading everything.
		return nil, damaged(path, "empty file; kwickmig only creates a checkpoint where no file exists")
	}
	b, err := boltOpen(path, true, wait)
	if err != nil {
		return nil, err
	}
	db := &DB{bolt: b, path: path}
	db.filesAtOpen.Store(-1)
	if err := db.checkFile(); err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

// boltOpen opens the file with bbolt, sorting its errors into ErrInUse,
// ErrDamaged and the rest (permissions, I/O).
func boltOpen(path string, readOnly bool, wait time.Duration) (b *bolt.DB, err error) {
	err = protect(path, func() error {
		var err error
		b, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: wait, ReadOnly: readOnly})
		return err
	})
	switch {
	case err == nil:
		return b, nil
	case errors.Is(err, ErrDamaged):
		return nil, err
	case errors.Is(err, berrors.ErrTimeout):
		if h := Holder(path); h != "" {
			return nil, inUseError(fmt.Sprintf("checkpoint %s is in use by %s: run this after it stops", path, h))
		}
		return nil, fmt.Errorf("%w: checkpoint %s is locked by another process (a files sync or db command running on it); "+
			"commands that run at the same time need separate --checkpoint files", ErrInUse, path)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return nil, fmt.Errorf("open checkpoint %s: %w", path, err)
	}
	// Everything else bbolt reports on open is about the file's content:
	// invalid or mismatched meta pages, a size below two pages, a map that
	// cannot be made from it.
	return nil, damaged(path, err.Error())
}

// checkFile proves the file is an intact kwickmig checkpoint before any
// command trusts it: the page structure, key order and freelist
// (checkPages, with plain reads), the meta section, and that every value
// decodes (scan: chunked, so RSS stays flat). Measured on a 1M-file checkpoint,
// see README ("damaged checkpoint").
func (db *DB) checkFile() error {
	f, err := os.Open(db.path)
	if err != nil {
		return fmt.Errorf("open checkpoint %s: %w", db.path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open checkpoint %s: %w", db.path, err)
	}
	if err := checkPages(f, st.Size()); err != nil {
		return damaged(db.path, err.Error())
	}
	db.filesAtOpen.Store(0)
	var sections [][]byte
	err = db.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return damaged(db.path, "not a kwickmig checkpoint: no meta section")
		}
		if err := checkVersion(meta); err != nil {
			if errors.Is(err, errNewer) {
				return fmt.Errorf("checkpoint %s: %w", db.path, err)
			}
			return damaged(db.path, err.Error())
		}
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			sections = append(sections, bytes.Clone(name))
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, name := range sections {
		if err := db.checkValues(string(name)); err != nil {
			return err
		}
	}
	return nil
}

// checkValues decodes every value of a top-level section.
func (db *DB) checkValues(section string) error {
	return db.scan([]byte(section), func(k, v []byte) error {
		var bad error
		switch {
		case v == nil:
			bad = errors.New("unexpected nested section")
		case section == string(bucketMeta):
		case section == string(bucketFiles):
			var r FileRecord
			if string(v) != string(dirMarker) {
				bad = r.unmarshal(v)
				db.filesAtOpen.Add(1)
			}
		case !json.Valid(v):
			bad = errors.New("not JSON")
		}
		if bad != nil {
			return damaged(db.path, fmt.Sprintf("section %s, key %q: %v", section, k, bad))
		}
		return nil
	})
}

// create makes a new checkpoint at path atomically: it is built under a
// temporary name and linked into place, so path is either absent or a
// complete checkpoint — never the empty or half-initialised file a crash
// during creation would leave, which Open would then have to refuse.
func create(path string) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".new-*")
	if err != nil {
		return fmt.Errorf("create checkpoint %s: %w", path, err)
	}
	tmpPath := tmp.Name()
	tmp.Close()
	defer os.Remove(tmpPath)
	b, err := bolt.Open(tmpPath, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		return fmt.Errorf("create checkpoint %s: %w", path, err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		if err := meta.Put([]byte("version"), []byte(strconv.Itoa(Version))); err != nil {
			return err
		}
		for _, name := range [][]byte{bucketFiles, bucketRuns} {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("create checkpoint %s: %w", path, err)
	}
	// Link fails if another process created path meanwhile: then that file
	// is the checkpoint.
	if err := os.Link(tmpPath, path); err != nil && !errors.Is(err, fs.ErrExist) {
		// A file system without hard links: rename (which would replace a
		// file created in the last instant; nothing else can).
		if _, serr := os.Lstat(path); !errors.Is(serr, fs.ErrNotExist) {
			return fmt.Errorf("create checkpoint %s: %w", path, err)
		}
		if err := os.Rename(tmpPath, path); err != nil {
			return fmt.Errorf("create checkpoint %s: %w", path, err)
		}
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// init adds sections a checkpoint written by an older release lacks.
func (db *DB) init() error {
	return db.update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketFiles, bucketRuns} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
}

// inUseError is an ErrInUse whose text names the holder (from its live
// file) instead of repeating ErrInUse's generic words.
type inUseError string

func (e inUseError) Error() string        { return string(e) }
func (e inUseError) Is(target error) bool { return target == ErrInUse }
