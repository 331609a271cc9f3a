package checkpoint

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
)

func TestFileRecordsRoundTrip(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "cp.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	recs := map[string]FileRecord{
		"a/b/x.json": {Size: 10, MtimeNs: -5, CtimeNs: 1 << 62, Inode: 1<<64 - 1, CRC32C: 0xdeadbeef, ETag: "e1", UploadedNs: 7},
		"a/b/y.json": {Size: 0, ETag: ""},
		"a/c.json":   {Size: 3, ETag: "e3"},
		"a-b.json":   {Size: 4, ETag: "e4"},
		"top":        {Size: 5, ETag: "e5"},
	}
	var ops []FileOp
	for rel, r := range recs {
		ops = append(ops, FileOp{Rel: rel, Rec: &r})
	}
	if err := db.ApplyFileOps(ops); err != nil {
		t.Fatal(err)
	}
	for rel, want := range recs {
		got, ok, err := db.Lookup(rel)
		if err != nil || !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("Lookup(%s)=%+v,%v,%v want %+v", rel, got, ok, err, want)
		}
	}
	var root []string
	if err := db.ListDir("", func(e DirEntry) error {
		root = append(root, fmt.Sprintf("%s:%v", e.Name, e.IsDir))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a:true", "a-b.json:false", "top:false"}; !reflect.DeepEqual(root, want) {
		t.Errorf("ListDir(\"\")=%v, want %v", root, want)
	}
	var all []string
	if err := db.WalkRecorded("a", func(rel string, _ FileRecord) error { all = append(all, rel); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a/c.json", "a/b/x.json", "a/b/y.json"}; !reflect.DeepEqual(all, want) {
		t.Errorf("WalkRecorded(a)=%v, want %v", all, want)
	}
	// A directory keeps its marker while records remain below it.
	if err := db.ApplyFileOps([]FileOp{{Rel: "a/b", DeleteDir: true}, {Rel: "a/b/x.json"}}); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.CountFiles(); n != 4 {
		t.Fatalf("CountFiles=%d, want 4", n)
	}
	if err := db.ApplyFileOps([]FileOp{{Rel: "a/b/y.json"}, {Rel: "a/b", DeleteDir: true}}); err != nil {
		t.Fatal(err)
	}
	var sub []string
	_ = db.ListDir("a", func(e DirEntry) error { sub = append(sub, e.Name); return nil })
	if want := []string{"c.json"}; !reflect.DeepEqual(sub, want) {
		t.Errorf("after removing a/b: ListDir(a)=%v, want %v", sub, want)
	}
}

func TestBindRefusesOtherPairing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Bind("files", "src1 -> s3://b"); err != nil {
		t.Fatal(err)
	}
	if err := db.Bind("files", "src1 -> s3://b"); err != nil {
		t.Fatalf("same pairing refused: %v", err)
	}
	if err := db.Bind("files", "src2 -> s3://b"); !errors.Is(err, ErrMismatch) {
		t.Fatalf("other pairing: err=%v, want ErrMismatch", err)
	}
	db.Close()
	// A second process cannot open it while it is open.
	db, _ = Open(path)
	defer db.Close()
	if _, err := Open(path); err == nil {
		t.Fatal("second Open of a locked checkpoint succeeded")
	}
}

// BenchmarkApplyFileOps measures the checkpoint write path in records/s
// (batches of 2000, as files sync commits them).
func BenchmarkApplyFileOps(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "cp.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const batch = 2000
	ops := make([]FileOp, batch)
	n := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range ops {
			n++
			ops[j] = FileOp{Rel: fmt.Sprintf("s%03d/2026/01/%02d/%08d.json", n%200, n%28, n),
				Rec: &FileRecord{Size: 4096, MtimeNs: int64(n), CtimeNs: int64(n), Inode: uint64(n), ETag: "0123456789abcdef0123456789abcdef"}}
		}
		if err := db.ApplyFileOps(ops); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
}
