package verify

import (
	"strings"
	"testing"
)

func TestMultisetDiff(t *testing.T) {
	got := multisetDiff([]string{"a", "a", "b"}, []string{"a", "c"})
	want := "only on the source: a|only on the source: b|only on the target: c"
	if strings.Join(got, "|") != want {
		t.Fatalf("multisetDiff = %q, want %q", got, want)
	}
	if d := multisetDiff([]string{"x", "y"}, []string{"y", "x"}); len(d) != 0 {
		t.Fatalf("order must not matter: %q", d)
	}
}
