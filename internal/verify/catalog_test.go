package verify

import (
	"strings"
	"testing"
)

func TestSplitTableName(t *testing.T) {
	for _, tc := range []struct{ in, schema, name string }{
		{"orders", "public", "orders"},
		{"sales.orders", "sales", "orders"},
		{`public."Order Lines"`, "public", "Order Lines"},
		{`"my.schema"."a.b"`, "my.schema", "a.b"},
		{`"we""ird"`, "public", `we"ird`},
	} {
		s, n := splitTableName(tc.in)
		if s != tc.schema || n != tc.name {
			t.Errorf("splitTableName(%q) = %q, %q; want %q, %q", tc.in, s, n, tc.schema, tc.name)
		}
	}
}

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
