package pgcatalog

import (
	"errors"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"", ".", "a.", ".b", `"unterminated`, `a."b`, `a..b`, `a.b."c"`, `"a".b.c`} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) succeeded, want an error", in)
		}
	}
}

func TestMatches(t *testing.T) {
	for _, tc := range []struct {
		spec, schema, table string
		want                bool
	}{
		{"orders", "public", "orders", true},
		{"orders", "sales", "orders", true},  // bare: any schema
		{"Orders", "public", "orders", true}, // unquoted folds
		{"Orders", "public", "Orders", true}, // or matches as typed
		{`"Orders"`, "public", "orders", false},
		{`"orders"`, "public", "Orders", false},
		{"sales.orders", "sales", "orders", true},
		{"sales.orders", "public", "orders", false},
		{"sales.orders", "public", "sales.orders", true}, // a dotted table name, any schema
		{`"my.schema"."a.b"`, "my.schema", "a.b", true},
		{`"my.schema"."a.b"`, "my", "schema.a.b", false},
		{`sales."orders"`, "public", "sales.orders", false}, // quoted: the dot separates
		{`"sales".orders`, "sales", "orders", true},
		{"my.schema.a.b", "my.schema", "a.b", true},
		{"my.schema.a.b", "my", "schema.a.b", true},
		{`"we""ird"`, "public", `we"ird`, true},
		{`public."Order Lines"`, "public", "Order Lines", true},
		{`My Schema.Order Lines`, "My Schema", "Order Lines", true},
		{`"My Schema".order lines`, "My Schema", "order lines", true},
		{`"My Schema".Order Lines`, "My Schema", "order lines", true},
		{`"My Schema".Order Lines`, "my schema", "order lines", false},
	} {
		sp, err := Parse(tc.spec)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.spec, err)
		}
		if got := sp.Matches(tc.schema, tc.table); got != tc.want {
			t.Errorf("%q matches %q.%q = %v, want %v", tc.spec, tc.schema, tc.table, got, tc.want)
		}
	}
}

func TestResolve(t *testing.T) {
	tables := []Name{{"public", "orders"}, {"sales", "orders"}, {"public", "Items"}, {"public", "items"},
		{"public", "a.b"}, {"a", "b"}, {"public", "lines"}}
	for _, tc := range []struct {
		spec string
		want int    // index, or -1
		err  string // substring of the error
		is   error
	}{
		{spec: "lines", want: 6},
		{spec: "public.orders", want: 0},
		{spec: `sales."orders"`, want: 1},
		{spec: `"Items"`, want: 2},
		{spec: `"items"`, want: 3},
		{spec: "orders", want: -1, is: ErrAmbiguous, err: "table orders is ambiguous: it matches public.orders, sales.orders; give one of these exactly"},
		{spec: "Items", want: -1, is: ErrAmbiguous, err: `public."Items", public.items`},
		{spec: "a.b", want: -1, is: ErrAmbiguous, err: `a.b, public."a.b"`},
		{spec: `"a.b"`, want: 4},
		{spec: `a.b.c`, want: -1, is: ErrNotFound, err: "table a.b.c not found"},
		{spec: "nosuch", want: -1, is: ErrNotFound},
	} {
		got, err := Resolve(tc.spec, tables)
		if got != tc.want {
			t.Errorf("Resolve(%q) = %d, want %d (err %v)", tc.spec, got, tc.want, err)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("Resolve(%q) err %v, want %v", tc.spec, err, tc.is)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Resolve(%q) err %v, want %q", tc.spec, err, tc.err)
		}
	}
	if _, err := ResolveAll([]string{"orders", "lines", "nosuch"}, tables); err == nil ||
		!strings.Contains(err.Error(), "table orders is ambiguous") || !strings.Contains(err.Error(), "table nosuch not found") ||
		!errors.Is(err, ErrNotFound) || !errors.Is(err, ErrAmbiguous) {
		t.Errorf("ResolveAll err %v, want both bad names", err)
	}
	if got, err := ResolveAll([]string{"lines", "public.orders", "lines"}, tables); err != nil || len(got) != 2 || got[0] != 0 || got[1] != 6 {
		t.Errorf("ResolveAll = %v, %v; want [0 6] in catalog order, duplicates once", got, err)
	}
}

func TestDisplayRoundTrip(t *testing.T) {
	for _, n := range []Name{{"public", "orders"}, {"My Schema", "Order Lines"}, {"a.b", `we"ird`}, {"public", "1st"}} {
		sp, err := Parse(n.String())
		if err != nil {
			t.Fatalf("Parse(%q): %v", n.String(), err)
		}
		if !sp.Matches(n.Schema, n.Table) {
			t.Errorf("%q does not match %+v", n.String(), n)
		}
	}
}
