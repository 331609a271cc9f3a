package pgcopy

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/kmtest"
)

// testOptions returns copy options for a test's database pair with a
// checkpoint of the test's own.
func testOptions(t *testing.T, e *kmtest.PGEnv) Options {
	t.Helper()
	return Options{
		SourceURL:  e.SourceURL,
		TargetURL:  e.TargetURL,
		Jobs:       2,
		IndexJobs:  2,
		Checkpoint: filepath.Join(t.TempDir(), "kwickmig.db"),
	}
}

func mustConnect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if _, err := c.Exec(ctx, "SET TimeZone = 'UTC'; SET extra_float_digits = 3; SET DateStyle = ISO; SET IntervalStyle = postgres"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// tableDump returns a table's rows as text, one per line, in a fixed order.
func tableDump(t testing.TB, c *pgx.Conn, qname string) string {
	t.Helper()
	var b strings.Builder
	_, err := c.PgConn().CopyTo(context.Background(), &b,
		"COPY (SELECT kw_row_::text FROM "+qname+" kw_row_ ORDER BY kw_row_::text COLLATE \"C\") TO STDOUT")
	if err != nil {
		t.Fatalf("dump %s: %v", qname, err)
	}
	return b.String()
}

// sameTables fails unless every table has identical rows on both sides
// and the source has at least minRows rows in total.
func sameTables(t testing.TB, e *kmtest.PGEnv, minRows int, tables ...string) {
	t.Helper()
	src, dst := mustConnect(t, e.SourceURL), mustConnect(t, e.TargetURL)
	total := 0
	for _, q := range tables {
		a, b := tableDump(t, src, q), tableDump(t, dst, q)
		total += strings.Count(a, "\n")
		if a != b {
			t.Errorf("table %s differs:\nsource:\n%s\ntarget:\n%s", q, clip(a), clip(b))
		}
	}
	if total < minRows {
		t.Errorf("source rows=%d, want at least %d (the comparison proves nothing)", total, minRows)
	}
}

func clip(s string) string {
	if len(s) > 3000 {
		return s[:3000] + "…"
	}
	return s
}

func queryInt(t testing.TB, url, sql string) int64 {
	t.Helper()
	c := mustConnect(t, url)
	var n int64
	if err := c.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
