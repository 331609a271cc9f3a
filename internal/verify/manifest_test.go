package verify

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every cut of the manifest, and every flipped byte, is refused.
func TestManifestChecksum(t *testing.T) {
	m := &Manifest{Format: manifestFormat, Version: manifestVersion, Kwickmig: "test",
		Tables: []*ManifestTable{{Schema: "public", Name: "t", Key: []string{"id"}, Boundaries: []string{"10"},
			Segments: []ManifestSegment{{Rows: 9, Hash: "-12"}, {Rows: 3, Hash: "7"}}}}}
	data, err := encodeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeManifest(data, "m")
	if err != nil || got.Tables[0].Segments[0].Hash != "-12" {
		t.Fatalf("decode: %v %+v", err, got)
	}
	for n := 0; n < len(data)-1; n++ {
		if _, err := decodeManifest(data[:n], "m"); err == nil || !strings.Contains(err.Error(), "damaged or incomplete") {
			t.Fatalf("cut at %d of %d: %v", n, len(data), err)
		}
	}
	for i := range data {
		bad := bytes.Clone(data)
		bad[i] ^= 0x01
		if _, err := decodeManifest(bad, "m"); err == nil {
			t.Fatalf("byte %d flipped: accepted", i)
		}
	}
}

// A rows file reads back what was written, and a cut one is an error.
func TestManifestRowsFile(t *testing.T) {
	var buf bytes.Buffer
	w, err := newRowsWriter(&buf, rowsMagicKeyed)
	if err != nil {
		t.Fatal(err)
	}
	rows := [][]string{{"a,b", ""}, {"new\nline", "ü"}, {strings.Repeat("k", 300), "x"}}
	for i, k := range rows {
		if err := w.keyed(i, k, int64(-i)<<40); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "rows")
	read := func(data []byte) ([][]string, error) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := openRowsFile(path, "t", 2)
		if err != nil {
			return nil, err
		}
		defer r.close()
		var out [][]string
		for i := 0; ; i++ {
			seg, key, h, err := r.nextKeyed()
			if err == io.EOF {
				return out, nil
			}
			if err != nil {
				return out, err
			}
			if seg != i || h != int64(-i)<<40 {
				t.Fatalf("row %d: segment %d hash %d", i, seg, h)
			}
			out = append(out, key)
		}
	}
	got, err := read(buf.Bytes())
	if err != nil || len(got) != 3 || got[1][0] != "new\nline" || got[2][0] != rows[2][0] {
		t.Fatalf("read back: %q %v", got, err)
	}
	if got, err := read(buf.Bytes()[:buf.Len()-3]); err == nil && len(got) == 3 {
		t.Fatal("a cut rows file read back whole")
	}
}
