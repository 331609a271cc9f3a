package checkpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Verified is verify files' proof stamp on one file record: which
// verification run last proved the file's content equal to its object's
// (Run, a sequence number whose time and mode verify files keeps in its own
// section), how (Level), and which object was proven: the listing's
// LastModified (ObjModNs) together with the record's ETag identify it, since
// an S3 object never changes in place (any rewrite is a new PUT or copy,
// with a new LastModified and ETag).
//
// It is stored as an optional trailer after a version-1 record's ETag:
// releases before it decode the record and ignore the trailer (and drop it
// when they rewrite the record), so the layout version stays 1 and a
// checkpoint keeps working with the release that wrote it before. It is
// kept small (about 8 bytes: the run number, and LastModified as its
// distance from the upload time), so stamping a million records grows pages
// that files sync filled to 90% without splitting most of them.
type Verified struct {
	Run      uint64 // the verification run that proved it (> 0)
	Level    Level
	ObjModNs int64 // the object's LastModified in the listing then, Unix ns
}

// Level is how a file's content was proven.
type Level uint8

const (
	LevelNone     Level = 0
	LevelChecksum Level = 1 // the object's stored checksum (or MD5 ETag) equals a fresh hash of the file
	LevelDeep     Level = 2 // the object's bytes were downloaded and compared
)

func (l Level) String() string {
	switch l {
	case LevelChecksum:
		return "checksum"
	case LevelDeep:
		return "deep"
	}
	return "none"
}

// Zero reports whether nothing is proven.
func (v Verified) Zero() bool { return v.Level == LevelNone }

// trailerVerified tags the trailer; an unknown tag is damage, not a newer
// format, so the open-time check still catches a corrupt tail.
const trailerVerified = 'V'

func (v Verified) appendTrailer(buf []byte, uploadedNs int64) []byte {
	if v.Zero() {
		return buf
	}
	buf = append(buf, trailerVerified, byte(v.Level))
	buf = binary.AppendUvarint(buf, v.Run)
	return binary.AppendVarint(buf, v.ObjModNs-uploadedNs)
}

func (v *Verified) parseTrailer(b []byte, uploadedNs int64) error {
	*v = Verified{}
	if len(b) == 0 {
		return nil
	}
	if len(b) < 2 || b[0] != trailerVerified || (Level(b[1]) != LevelChecksum && Level(b[1]) != LevelDeep) {
		return errors.New("corrupt file record (verified stamp)")
	}
	v.Level, b = Level(b[1]), b[2:]
	run, k := binary.Uvarint(b)
	if k <= 0 || run == 0 {
		return errors.New("corrupt file record (verified stamp)")
	}
	v.Run, b = run, b[k:]
	mod, k := binary.Varint(b)
	if k <= 0 || k != len(b) {
		return errors.New("corrupt file record (verified stamp)")
	}
	v.ObjModNs = uploadedNs + mod
	return nil
}

// sameFile reports whether two records describe the same synced file and
// upload (everything but the stamp).
func sameFile(a, b *FileRecord) bool {
	return a.Size == b.Size && a.MtimeNs == b.MtimeNs && a.CtimeNs == b.CtimeNs && a.Inode == b.Inode &&
		a.CRC32C == b.CRC32C && a.ETag == b.ETag && a.UploadedNs == b.UploadedNs
}

// Stamp is one proof to record: Rec is the record the verification read
// for Rel; the stamp is only written if the record is still that one.
type Stamp struct {
	Rel string
	Rec FileRecord
	V   Verified
}

// StampVerified writes proof stamps in one transaction, in key order (each
// B+tree page is written once). A record that changed or vanished since it
// was read keeps its state: a proof belongs to the record it was made for.
// It returns the number of records stamped.
func (db *DB) StampVerified(stamps []Stamp) (int, error) {
	stamps = slices.Clone(stamps)
	slices.SortFunc(stamps, func(a, b Stamp) int { return strings.Compare(a.Rel, b.Rel) })
	n := 0
	err := db.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFiles)
		// Stamped records grow by ~12 bytes; leave room so pages rewritten
		// in key order need not split again at the next stamp.
		b.FillPercent = 0.9
		for _, s := range stamps {
			k := fileKey(splitRel(s.Rel))
			v := b.Get(k)
			if v == nil || bytes.Equal(v, dirMarker) {
				continue
			}
			var cur FileRecord
			if err := cur.unmarshal(v); err != nil {
				return damaged(db.path, fmt.Sprintf("record %q: %v", s.Rel, err))
			}
			if !sameFile(&cur, &s.Rec) || cur.Verified == s.V {
				continue
			}
			cur.Verified = s.V
			if err := b.Put(k, cur.marshal(nil)); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}
