package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestVerifiedStampCompatible: a stamped record is the unstamped record's
// bytes plus a trailer, which releases before the stamp ignore; a record
// without one decodes with no proof.
func TestVerifiedStampCompatible(t *testing.T) {
	r := FileRecord{Size: 10, MtimeNs: -5, CtimeNs: 1 << 62, Inode: 7, CRC32C: 0xdeadbeef, ETag: "e1", UploadedNs: 9}
	plain := r.marshal(nil)
	r.Verified = Verified{Run: 3, Level: LevelChecksum, ObjModNs: 123456789}
	stamped := r.marshal(nil)
	if !bytes.HasPrefix(stamped, plain) || len(stamped) == len(plain) {
		t.Fatalf("stamped %x does not extend %x", stamped, plain)
	}
	var got FileRecord
	if err := got.unmarshal(stamped); err != nil || got != r {
		t.Fatalf("stamped round trip: %+v %v", got, err)
	}
	if err := got.unmarshal(plain); err != nil || !got.Verified.Zero() {
		t.Fatalf("plain record: %+v %v", got, err)
	}
	for _, bad := range [][]byte{append(bytes.Clone(plain), 'X'), append(bytes.Clone(plain), 'V', 9, 1, 0), append(bytes.Clone(plain), 'V', 1, 0, 0), stamped[:len(stamped)-1], append(bytes.Clone(stamped), 0)} {
		if err := got.unmarshal(bad); err == nil {
			t.Errorf("corrupt trailer %x accepted", bad[len(plain):])
		}
	}
}

// TestStampVerified: stamps land on the records they were made for, never
// on a record that changed since, and a rewrite by files sync drops them.
func TestStampVerified(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.db")
	db, err := Open(path)
	must(t, err)
	a := FileRecord{Size: 1, ETag: "ea", UploadedNs: 1}
	b := FileRecord{Size: 2, ETag: "eb", UploadedNs: 2}
	must(t, db.ApplyFileOps([]FileOp{{Rel: "d/a", Rec: &a}, {Rel: "d/b", Rec: &b}}))
	v := Verified{Run: 1, Level: LevelDeep, ObjModNs: 50}
	old := b
	old.ETag = "stale"
	n, err := db.StampVerified([]Stamp{{Rel: "d/b", Rec: old, V: v}, {Rel: "d/a", Rec: a, V: v}, {Rel: "d/gone", Rec: a, V: v}})
	must(t, err)
	if n != 1 {
		t.Fatalf("stamped %d, want 1", n)
	}
	got, _, _ := db.Lookup("d/a")
	if got.Verified != v {
		t.Fatalf("d/a: %+v", got)
	}
	if got, _, _ := db.Lookup("d/b"); !got.Verified.Zero() {
		t.Fatalf("d/b stamped for a record it no longer has: %+v", got)
	}
	must(t, db.ApplyFileOps([]FileOp{{Rel: "d/a", Rec: &FileRecord{Size: 1, ETag: "ea2", UploadedNs: 3}}}))
	if got, _, _ := db.Lookup("d/a"); !got.Verified.Zero() {
		t.Fatalf("re-upload kept the proof: %+v", got)
	}
	must(t, db.Close())

	// The open-time check decodes the stamps: a corrupt one is damage.
	db, err = Open(path)
	must(t, err)
	_, err = db.StampVerified([]Stamp{{Rel: "d/b", Rec: b, V: v}})
	must(t, err)
	must(t, db.bolt.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketFiles)
		k := fileKey("d", "b")
		val := append(bytes.Clone(bk.Get(k)), 0xff)
		return bk.Put(k, val)
	}))
	must(t, db.Close())
	if _, err := Open(path); !errors.Is(err, ErrDamaged) {
		t.Fatalf("corrupt stamp: %v, want ErrDamaged", err)
	}
}

// BenchmarkStampVerified1M measures stamping every record of a 1M-file
// checkpoint in sorted batches of 20,000 (what a full verify files
// --checksum writes): go test -run x -bench StampVerified1M -benchtime 1x ./internal/checkpoint
func BenchmarkStampVerified1M(bm *testing.B) {
	const n, batch = 1_000_000, 20_000
	dir := bm.TempDir()
	path := buildCheckpoint(bm, dir, n)
	db, err := Open(path)
	must(bm, err)
	defer db.Close()
	var recs []Stamp
	must(bm, db.WalkRecorded("", func(rel string, r FileRecord) error {
		recs = append(recs, Stamp{Rel: rel, Rec: r, V: Verified{Run: 1, Level: LevelChecksum, ObjModNs: r.UploadedNs + 3_000_000}})
		return nil
	}))
	before := fileSize(bm, path)
	bm.ResetTimer()
	start := time.Now()
	total := 0
	for i := 0; i < len(recs); i += batch {
		k, err := db.StampVerified(recs[i:min(len(recs), i+batch)])
		must(bm, err)
		total += k
	}
	bm.StopTimer()
	bm.ReportMetric(time.Since(start).Seconds(), "s/1M")
	bm.ReportMetric(float64(fileSize(bm, path)-before)/1e6, "MB-growth")
	if total != n {
		bm.Fatalf("stamped %d of %d", total, n)
	}
	fmt.Printf("stamped %d records in %v; checkpoint %.1f -> %.1f MB\n", total, time.Since(start).Round(time.Millisecond), float64(before)/1e6, float64(fileSize(bm, path))/1e6)
}

func fileSize(t testing.TB, path string) int64 {
	st, err := os.Stat(path)
	must(t, err)
	return st.Size()
}
