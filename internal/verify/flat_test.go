package verify

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/objstore/s3store"
	"github.com/kwick/kwickmig/internal/source"
)

// TestVerifyFilesBigDirectory: a directory too big for a one-level listing
// is cut into key-range chunks listed in parallel. Differences placed at
// the chunk boundaries, inside subdirectories that straddle them, and past
// the last source name must each be found exactly once, whatever the
// chunk size.
func TestVerifyFilesBigDirectory(t *testing.T) {
	e := kmtest.S3(t)
	e.SetAWSEnv(t)
	ctx := context.Background()
	st, err := s3store.New(ctx, s3store.Options{URL: "s3://" + e.Bucket + "/p/", EndpointURL: e.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	put := func(rel string, body []byte) {
		t.Helper()
		key, err := source.ObjectKey("", rel)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Put(ctx, key, bytes.NewReader(body), int64(len(body)), objstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel string, body []byte) {
		t.Helper()
		p := filepath.Join(src, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// 300 files in the root, every 37th a directory with two files; names
	// chosen so that directory keys ("d0074/") and file keys ("d0074.json")
	// interleave.
	var all []string
	for i := range 300 {
		name := fmt.Sprintf("d%04d", i)
		if i%37 == 0 {
			all = append(all, name+"/a.json", name+"/b/c.json")
		}
		all = append(all, name+".json")
	}
	sort.Strings(all)
	for _, rel := range all {
		write(rel, []byte("body of "+rel))
		put(rel, []byte("body of "+rel))
	}
	// Damage: a missing file, an extra object between two source names, an
	// extra below a source directory, a size mismatch, an extra after the
	// last name, a missing file in a subdirectory.
	write("d0100.json-missing", []byte("x"))
	put("d0150.jsonx", []byte("x"))
	put("d0111/zz.json", []byte("x"))
	put("d0200.json", []byte("short"))
	put("zzz-last.json", []byte("x"))
	write("d0259/b/new.json", []byte("x"))
	want := map[string]string{
		"d0100.json-missing": KindMissing, "d0150.jsonx": KindExtra, "d0111/zz.json": KindExtra,
		"d0200.json": KindSize, "zzz-last.json": KindExtra, "d0259/b/new.json": KindMissing,
	}

	defer func(b, c int) { bigDir, chunkItems = b, c }(bigDir, chunkItems)
	for _, c := range []struct{ big, chunk, ranges int }{{10000, 5000, 32}, {100, 7, 32}, {100, 1, 1}, {50, 64, 4}, {100, 299, 32}} {
		bigDir, chunkItems = c.big, c.chunk
		res, err := VerifyFiles(ctx, st, nil, FilesOptions{Src: src, Prefix: st.Prefix(), Walkers: 4, Ranges: c.ranges})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, d := range res.Differences {
			if _, dup := got[d.Path]; dup {
				t.Errorf("%+v: %s reported twice", c, d.Path)
			}
			got[d.Path] = d.Kind
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || res.Matched != int64(len(all)-1) {
			t.Errorf("%+v: matched %d (want %d), differences %v\nwant %v", c, res.Matched, len(all)-1, got, want)
		}
		if res.ObjectsListed != int64(len(all)+3) {
			t.Errorf("%+v: %d objects listed, want %d", c, res.ObjectsListed, len(all)+3)
		}
	}
}
