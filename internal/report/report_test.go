package report

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestBytes(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"}, {5 << 30, "5.0 GiB"}} {
		if got := Bytes(tc.n); got != tc.want {
			t.Errorf("Bytes(%d)=%q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestQuote(t *testing.T) {
	if got := Quote("plain name.json"); got != "plain name.json" {
		t.Errorf("plain name quoted: %q", got)
	}
	if got, want := Quote("new\nline"), `"new\nline"`; got != want {
		t.Errorf("Quote=%q, want %q", got, want)
	}
	if got, want := Quote("bad\xff"), `"bad\xff"`; got != want {
		t.Errorf("Quote=%q, want %q", got, want)
	}
}

func TestTable(t *testing.T) {
	var b bytes.Buffer
	Table(&b, [][]string{{"a", "1"}, {"longer", "22"}, {"å", "3"}})
	want := "a       1\nlonger  22\nå       3\n"
	if b.String() != want {
		t.Errorf("Table=%q, want %q", b.String(), want)
	}
}

func TestWriteJSON(t *testing.T) {
	p := filepath.Join(t.TempDir(), "r.json")
	if err := WriteJSON(p, map[string]int{"files_uploaded": 3}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	var got map[string]int
	if err := json.Unmarshal(data, &got); err != nil || got["files_uploaded"] != 3 {
		t.Fatalf("report %s: %v", data, err)
	}
	if err := WriteJSON(filepath.Join(t.TempDir(), "no/such/dir/r.json"), 1); err == nil {
		t.Fatal("WriteJSON into a missing directory succeeded")
	}
}
