package sync

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/source"
)

func (f *fixture) rebuild(cp *checkpoint.DB, o RebuildOptions) *RebuildResult {
	f.t.Helper()
	o.Src, o.Prefix = f.src, f.store.Prefix()
	res, err := Rebuild(context.Background(), f.store, cp, o)
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

func (f *fixture) freshCheckpoint() *checkpoint.DB {
	f.t.Helper()
	cp, err := checkpoint.Open(filepath.Join(f.t.TempDir(), "new.db"))
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { cp.Close() })
	return cp
}

// TestRebuildRecords: the rebuilt record is what the next sync needs (the
// file's stat, the object's ETag and stored CRC32C); an object whose bytes
// differ from the file under the same size and mtime is recorded by the
// size+mtime rule and refused with Checksum; a non-empty checkpoint is
// refused.
func TestRebuildRecords(t *testing.T) {
	f := newFixture(t, "")
	a, b := []byte(`{"receipt":"a"}`), []byte(`{"receipt":"b"}`)
	f.write("s1/a.json", a)
	f.write("s1/b.json", b)
	if res := f.run(Options{}); res.FilesUploaded != 2 {
		t.Fatalf("uploaded %d", res.FilesUploaded)
	}
	orig, _, _ := f.cp.Lookup("s1/a.json")
	// Same size, same stored mtime, other bytes (and their own CRC32C).
	st, _ := os.Stat(filepath.Join(f.src, "s1/b.json"))
	other := bytes.ToUpper(b)
	_, err := f.store.Put(context.Background(), "s1/b.json", bytes.NewReader(other), int64(len(other)), objstore.PutOptions{
		Metadata: map[string]string{"mtime": formatMtime(st.ModTime().UnixNano())},
		CRC32C:   objstore.EncodeCRC32C(crc32.Checksum(other, objstore.Castagnoli)),
	})
	if err != nil {
		t.Fatal(err)
	}

	if _, err := Rebuild(context.Background(), f.store, f.cp, RebuildOptions{Src: f.src, Prefix: f.store.Prefix()}); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("rebuild into a checkpoint with records: %v, want ErrNotEmpty", err)
	}

	cp := f.freshCheckpoint()
	if res := f.rebuild(cp, RebuildOptions{}); res.Recorded != 2 {
		t.Fatalf("size+mtime: %+v, want 2 recorded", res)
	}
	got, ok, err := cp.Lookup("s1/a.json")
	if err != nil || !ok {
		t.Fatalf("lookup: %v %v", ok, err)
	}
	if got.Size != orig.Size || got.MtimeNs != orig.MtimeNs || got.CtimeNs != orig.CtimeNs || got.Inode != orig.Inode ||
		got.ETag != orig.ETag || got.CRC32C != crc32.Checksum(a, objstore.Castagnoli) || got.UploadedNs == 0 {
		t.Fatalf("rebuilt record %+v, sync's record %+v", got, orig)
	}

	cp = f.freshCheckpoint()
	res := f.rebuild(cp, RebuildOptions{Checksum: true})
	if res.Recorded != 1 || res.ChecksumDiffers != 1 {
		t.Fatalf("with Checksum: %+v, want 1 recorded and 1 checksum mismatch", res)
	}
	if _, ok, _ := cp.Lookup("s1/b.json"); ok {
		t.Fatal("b.json recorded although its object has other bytes")
	}
}

func TestStoredMtime(t *testing.T) {
	for v, want := range map[string]int64{
		"1700000000.123456789": 1700000000123456789,
		"1700000000.5":         1700000000500000000,
		"1700000000":           1700000000000000000,
		"-1.500000000":         -500000000, // formatMtime of -0.5 s
	} {
		if got, ok := storedMtime(map[string]string{"Mtime": v}); !ok || got != want {
			t.Errorf("storedMtime(%q) = %d, %v; want %d", v, got, ok, want)
		}
	}
	for _, v := range []string{"", "abc", "1.1234567891", "1.x"} {
		if _, ok := storedMtime(map[string]string{"mtime": v}); ok {
			t.Errorf("storedMtime(%q) accepted", v)
		}
	}
	if got := formatMtime(-5e8); got != "-1.500000000" {
		t.Errorf("formatMtime(-0.5s) = %q", got)
	}
}

func TestRebuildKeyMapping(t *testing.T) {
	r := &rebuilder{opts: RebuildOptions{Prefix: "pre/", Filter: source.Filter{Exclude: []string{"tmp"}}}}
	for key, want := range map[string]string{
		"a/b.json":       "a/b.json",
		"%!%FF.json":     "\xff.json",
		"%!abc":          "", // not the canonical key of "abc"
		"a//b.json":      "",
		"a/./b.json":     "",
		"dir/":           "",
		"tmp/x.json":     "", // excluded
		"a/%!..":         "",
		"../escape.json": "",
	} {
		got, ok := r.relOf(key)
		if (want != "") != ok || got != want {
			t.Errorf("relOf(%q) = %q, %v; want %q", key, got, ok, want)
		}
	}
}
