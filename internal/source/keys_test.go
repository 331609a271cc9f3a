package source

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestObjectKeyRoundTrip(t *testing.T) {
	nfc, nfd := "caf\u00e9.json", "cafe\u0301.json"
	for _, tc := range []struct {
		rel, want string
	}{
		{"s1/2026/01/02/r.json", "p/s1/2026/01/02/r.json"},
		{"a b/50%off+#?.json", "p/a b/50%off+#?.json"},
		{`back\slash/-lead`, `p/back\slash/-lead`},
		{"new\nline", "p/new\nline"},
		{nfc, "p/" + nfc},
		{nfd, "p/" + nfd},
		{"bad\xffname/x", "p/%!bad%FFname/x"},
		{"bad\xff%25", "p/%!bad%FF%2525"},
		{"%!looks-encoded", "p/%!%25!looks-encoded"},
		{"ok/%!x\xfe", "p/ok/%!%25!x%FE"},
	} {
		got, err := ObjectKey("p/", tc.rel)
		if err != nil {
			t.Fatalf("ObjectKey(%q): %v", tc.rel, err)
		}
		if got != tc.want {
			t.Errorf("ObjectKey(%q)=%q, want %q", tc.rel, got, tc.want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("ObjectKey(%q)=%q is not UTF-8", tc.rel, got)
		}
		back, err := DecodeKey("p/", got)
		if err != nil || back != tc.rel {
			t.Errorf("DecodeKey(%q)=%q,%v, want %q", got, back, err, tc.rel)
		}
	}
}

func TestObjectKeyTooLong(t *testing.T) {
	_, err := ObjectKey("", strings.Repeat("a", 1025))
	if !errors.Is(err, ErrKeyTooLong) {
		t.Fatalf("err=%v, want ErrKeyTooLong", err)
	}
	if _, err := ObjectKey("", strings.Repeat("a", 1024)); err != nil {
		t.Fatalf("1024 bytes: %v", err)
	}
}

// FuzzObjectKey checks the mapping is injective and reversible on arbitrary
// byte names: decoding the key always gives back the original path.
func FuzzObjectKey(f *testing.F) {
	for _, s := range []string{"a/b", "\xff", "%!", "%!%25", "x%FF", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		if strings.ContainsRune(rel, 0) {
			return
		}
		key, err := ObjectKey("pre/", rel)
		if err != nil {
			return
		}
		if !utf8.ValidString(key) {
			t.Fatalf("key %q not UTF-8", key)
		}
		back, err := DecodeKey("pre/", key)
		if err != nil || back != rel {
			t.Fatalf("round trip %q -> %q -> %q, %v", rel, key, back, err)
		}
	})
}
