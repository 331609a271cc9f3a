package checkpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FileRecord is what files sync knows about one uploaded file. It is written
// only after the object store confirmed the upload.
type FileRecord struct {
	Size       int64
	MtimeNs    int64
	CtimeNs    int64
	Inode      uint64
	CRC32C     uint32
	ETag       string
	UploadedNs int64
	// Verified is what the last verify files proved about this record's
	// file and object (verified.go); zero: nothing proven. Any rewrite of
	// the record by files sync builds a fresh record, so a re-upload drops
	// the proof with it.
	Verified Verified
}

// Keys in the files section are "<dir>\x00<name>", with dir the "/"-joined
// relative directory ("" at the root). NUL cannot occur in file names, so the
// direct children of one directory are contiguous and in name order, and one
// cursor seek lists them: the planner merges each directory listing with its
// records without loading anything else. A directory is itself recorded
// (value dirMarker) under its parent, so a vanished directory's records can be
// found from its parent.
const recVersion = 1

var dirMarker = []byte{0}

func fileKey(dir, name string) []byte {
	k := make([]byte, 0, len(dir)+1+len(name))
	k = append(k, dir...)
	k = append(k, 0)
	return append(k, name...)
}

func splitRel(rel string) (dir, name string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return "", rel
	}
	return rel[:i], rel[i+1:]
}

func (r *FileRecord) marshal(buf []byte) []byte {
	buf = append(buf, recVersion)
	buf = binary.AppendVarint(buf, r.Size)
	buf = binary.AppendVarint(buf, r.MtimeNs)
	buf = binary.AppendVarint(buf, r.CtimeNs)
	buf = binary.AppendUvarint(buf, r.Inode)
	buf = binary.BigEndian.AppendUint32(buf, r.CRC32C)
	buf = binary.AppendVarint(buf, r.UploadedNs)
	buf = binary.AppendUvarint(buf, uint64(len(r.ETag)))
	buf = append(buf, r.ETag...)
	return r.Verified.appendTrailer(buf, r.UploadedNs)
}

func (r *FileRecord) unmarshal(b []byte) error {
	if len(b) == 0 || b[0] != recVersion {
		return errors.New("unknown file record version")
	}
	b = b[1:]
	var n int
	varint := func() int64 {
		v, k := binary.Varint(b)
		if k <= 0 {
			n = -1
			return 0
		}
		b = b[k:]
		return v
	}
	r.Size = varint()
	r.MtimeNs = varint()
	r.CtimeNs = varint()
	ino, k := binary.Uvarint(b)
	if k <= 0 || n < 0 {
		return errors.New("corrupt file record")
	}
	r.Inode, b = ino, b[k:]
	if len(b) < 4 {
		return errors.New("corrupt file record")
	}
	r.CRC32C, b = binary.BigEndian.Uint32(b), b[4:]
	r.UploadedNs = varint()
	l, k := binary.Uvarint(b)
	if n < 0 || k <= 0 || uint64(len(b)-k) < l {
		return errors.New("corrupt file record")
	}
	r.ETag = string(b[k : k+int(l)])
	return r.Verified.parseTrailer(b[k+int(l):], r.UploadedNs)
}

// DirEntry is one recorded child of a directory: a file (Rec set) or a
// subdirectory (IsDir).
type DirEntry struct {
	Name  string
	IsDir bool
	Rec   FileRecord
}

// ListDir calls fn for every recorded child of dir, in name order.
func (db *DB) ListDir(dir string, fn func(DirEntry) error) error {
	prefix := fileKey(dir, "")
	return db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketFiles).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			e := DirEntry{Name: string(k[len(prefix):])}
			if bytes.Equal(v, dirMarker) {
				e.IsDir = true
			} else if err := e.Rec.unmarshal(v); err != nil {
				return damaged(db.path, fmt.Sprintf("record %q: %v", k, err))
			}
			if err := callOut(func() error { return fn(e) }); err != nil {
				return err
			}
		}
		return nil
	})
}

// WalkRecorded calls fn for every file recorded at or below the directory
// rel, depth first ("" walks everything). rel paths are "/"-joined.
func (db *DB) WalkRecorded(rel string, fn func(rel string, rec FileRecord) error) error {
	var subdirs []string
	err := db.ListDir(rel, func(e DirEntry) error {
		child := e.Name
		if rel != "" {
			child = rel + "/" + e.Name
		}
		if e.IsDir {
			subdirs = append(subdirs, child)
			return nil
		}
		return fn(child, e.Rec)
	})
	if err != nil {
		return err
	}
	for _, d := range subdirs {
		if err := db.WalkRecorded(d, fn); err != nil {
			return err
		}
	}
	return nil
}

// Lookup returns the record of one file.
func (db *DB) Lookup(rel string) (FileRecord, bool, error) {
	var r FileRecord
	found := false
	err := db.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketFiles).Get(fileKey(splitRel(rel)))
		if v == nil || bytes.Equal(v, dirMarker) {
			return nil
		}
		found = true
		if err := r.unmarshal(v); err != nil {
			return damaged(db.path, fmt.Sprintf("record %q: %v", rel, err))
		}
		return nil
	})
	return r, found, err
}

// CountFiles returns the number of recorded files (for reports).
func (db *DB) CountFiles() (int, error) {
	n := 0
	err := db.scan(bucketFiles, func(_, v []byte) error {
		if !bytes.Equal(v, dirMarker) {
			n++
		}
		return nil
	})
	return n, err
}

// FileOp is one change to the files section: Put a record, or Delete one
// (Rec nil). DeleteDir removes a directory marker if nothing is recorded
// below it any more.
type FileOp struct {
	Rel       string
	Rec       *FileRecord
	DeleteDir bool
}

// ApplyFileOps writes ops in one transaction (one fsync). Putting a file
// also records its ancestor directories. Each op is idempotent, so a batch
// that is repeated after a crash yields the same state.
func (db *DB) ApplyFileOps(ops []FileOp) error {
	db.filesAtOpen.Store(-1)
	// Sorted writes touch each B+tree page once (faster than the completion
	// order of parallel uploads); the stable sort keeps the order of ops on
	// the same path. Directory removals go last, deepest first, so they see
	// the removals of the files below them.
	ops = slices.Clone(ops)
	slices.SortStableFunc(ops, func(a, b FileOp) int {
		switch {
		case a.DeleteDir != b.DeleteDir:
			if a.DeleteDir {
				return 1
			}
			return -1
		case a.DeleteDir:
			return strings.Compare(b.Rel, a.Rel)
		}
		return strings.Compare(a.Rel, b.Rel)
	})
	return db.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFiles)
		// Records arrive roughly in key order (directory by directory), so
		// split pages can be filled: a third smaller file than the default 50%.
		b.FillPercent = 0.9
		known := map[string]bool{}
		for _, op := range ops {
			dir, name := splitRel(op.Rel)
			switch {
			case op.DeleteDir:
				// Only an empty directory loses its marker: a file record
				// below it must stay reachable from its parent.
				prefix := fileKey(op.Rel, "")
				if k, _ := b.Cursor().Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) {
					continue
				}
				if err := b.Delete(fileKey(dir, name)); err != nil {
					return err
				}
			case op.Rec == nil:
				if err := b.Delete(fileKey(dir, name)); err != nil {
					return err
				}
			default:
				// A fresh slice per value: bbolt keeps it until commit.
				if err := b.Put(fileKey(dir, name), op.Rec.marshal(nil)); err != nil {
					return err
				}
				if err := ensureDirs(b, dir, known); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// ensureDirs records dir and its ancestors as directory markers.
func ensureDirs(b *bolt.Bucket, dir string, known map[string]bool) error {
	for dir != "" && !known[dir] {
		known[dir] = true
		parent, name := splitRel(dir)
		k := fileKey(parent, name)
		if v := b.Get(k); !bytes.Equal(v, dirMarker) {
			if err := b.Put(k, dirMarker); err != nil {
				return err
			}
		}
		dir = parent
	}
	return nil
}

// Now is the clock used for upload times (a variable for tests).
var Now = func() time.Time { return time.Now() }
