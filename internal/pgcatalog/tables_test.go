package pgcatalog

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/kmtest"
)

// hostile makes names that trip naive parsers: the same name in two schemas,
// case twins, dots and quotes inside names, a schema off the search path, a
// partition tree, and kwickmig's own schema (never listed).
const hostile = `
CREATE SCHEMA sales; CREATE SCHEMA "My.Schema"; CREATE SCHEMA hidden; CREATE SCHEMA kwickmig;
CREATE TABLE public.orders (id int); CREATE TABLE sales.orders (id int);
CREATE TABLE public."Items" (id int); CREATE TABLE public.items (id int);
CREATE TABLE "My.Schema"."Order ""Lines""" (id int);
CREATE TABLE public."sales.orders" (id int);
CREATE TABLE hidden.secret (id int);
CREATE TABLE kwickmig.log (id int);
CREATE TABLE public.visits (id int, day date) PARTITION BY RANGE (day);
CREATE TABLE sales.visits_01 PARTITION OF public.visits FOR VALUES FROM ('2025-01-01') TO ('2025-02-01');
CREATE TEMP TABLE tmp (id int);`

func TestResolveOnCluster(t *testing.T) {
	t.Parallel()
	e := kmtest.PG(t)
	kmtest.Exec(t, e.SourceURL, hostile)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, e.SourceURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// search_path games: the session sees sales first and hidden not at
	// all; names must resolve the same regardless.
	if _, err := conn.Exec(ctx, `SET search_path = sales, "My.Schema"`); err != nil {
		t.Fatal(err)
	}
	all, err := ListTables(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	byName := map[string]Table{}
	for _, tb := range all {
		listed = append(listed, tb.Name.String())
		byName[tb.Name.String()] = tb
	}
	want := `"My.Schema"."Order ""Lines""" hidden.secret public."Items" public.items public.orders public."sales.orders" public.visits sales.orders sales.visits_01`
	if strings.Join(listed, " ") != want {
		t.Fatalf("listed %s\nwant   %s", strings.Join(listed, " "), want)
	}
	if v, p := byName["public.visits"], byName["sales.visits_01"]; !v.Partitioned || v.Root != v.OID || p.Root != v.OID || p.Partitioned {
		t.Errorf("partition tree: parent %+v, partition %+v", v, p)
	}
	names := Names(all)
	for _, tc := range []struct {
		spec, want string // want: the table, or a substring of the error
		is         error
	}{
		{spec: "secret", want: "hidden.secret"}, // off the search path: still found
		{spec: "orders", want: "it matches public.orders, sales.orders", is: ErrAmbiguous},
		{spec: "sales.orders", want: `public."sales.orders", sales.orders`, is: ErrAmbiguous},
		{spec: `"sales.orders"`, want: `public."sales.orders"`},
		{spec: `sales."orders"`, want: "sales.orders"},
		{spec: "Items", want: `public."Items", public.items`, is: ErrAmbiguous},
		{spec: "ITEMS", want: "public.items"}, // folds; "Items" is not "ITEMS"
		{spec: `"Items"`, want: `public."Items"`},
		{spec: `"My.Schema"."Order ""Lines"""`, want: `"My.Schema"."Order ""Lines"""`},
		{spec: "visits_01", want: "sales.visits_01"},
		{spec: "kwickmig.log", want: "table kwickmig.log not found", is: ErrNotFound},
		{spec: "tmp", want: "table tmp not found", is: ErrNotFound},
	} {
		i, err := Resolve(tc.spec, names)
		switch {
		case tc.is != nil:
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Resolve(%s): %d, %v; want %v containing %q", tc.spec, i, err, tc.is, tc.want)
			}
		case err != nil:
			t.Errorf("Resolve(%s): %v, want %s", tc.spec, err, tc.want)
		case names[i].String() != tc.want:
			t.Errorf("Resolve(%s) = %s, want %s", tc.spec, names[i], tc.want)
		}
	}
	if _, err := Resolve(`My.Schema.Order "Lines"`, names); err == nil || !strings.Contains(err.Error(), "want table or schema.table") {
		t.Errorf("three parts with quotes: %v, want a parse error", err)
	}
}
