package pgdelta

import (
	"errors"
	"strings"
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/pgcatalog"
)

// TestInstallExcludeResolvesOnce: --exclude-table names resolve by
// pgcatalog's rule (a typo or an ambiguous bare name refuses the install),
// and what is recorded is the table resolved, not the name typed: a table
// of the same name created later in another schema is reported as not
// captured instead of being silently excluded too.
func TestInstallExcludeResolvesOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, `CREATE SCHEMA sales; CREATE SCHEMA "Odd.Schema";
		CREATE TABLE items (id int PRIMARY KEY);
		CREATE TABLE audit (at timestamptz);
		CREATE TABLE "Odd.Schema"."Log ""x""" (at timestamptz);
		CREATE TABLE public.orders (id int PRIMARY KEY); CREATE TABLE sales.orders (id int PRIMARY KEY)`)
	ctx := testCtx(t)
	for _, tc := range []struct {
		exclude []string
		want    string
		is      error
	}{
		{[]string{"audit", `"Odd.Schema"."Log ""x"""`, "audti"}, "table audti not found", pgcatalog.ErrNotFound},
		{[]string{"audit", `"Odd.Schema"."Log ""x"""`, "orders"}, "table orders is ambiguous: it matches public.orders, sales.orders", pgcatalog.ErrAmbiguous},
	} {
		_, err := Install(ctx, e.src(), InstallOptions{Exclude: tc.exclude})
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("install excluding %q: %v, want %q", tc.exclude, err, tc.want)
		}
		if ok, _ := CaptureInstalled(ctx, e.src()); ok {
			t.Fatalf("install excluding %q went ahead", tc.exclude)
		}
	}
	res := e.install(InstallOptions{Exclude: []string{"AUDIT", `"Odd.Schema"."Log ""x"""`}})
	if strings.Join(res.Excluded, " ") != `"Odd.Schema"."Log ""x""" public.audit` {
		t.Fatalf("excluded %q", res.Excluded)
	}
	kmtest.Exec(t, e.SourceURL, `CREATE TABLE sales.audit (at timestamptz)`)
	d, err := sourceDrift(ctx, e.src())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(d.Uncaptured, " ") != "sales.audit" {
		t.Errorf("uncaptured %q, want sales.audit only (public.audit and the odd log stay excluded)", d.Uncaptured)
	}
}
