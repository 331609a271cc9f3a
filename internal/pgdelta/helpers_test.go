package pgdelta

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/pgutil"
)

// env is a source/target pair with the same schema on both.
type env struct {
	*kmtest.PGEnv
	t testing.TB
}

func newEnv(t testing.TB, ddl ...string) *env {
	t.Helper()
	e := &env{PGEnv: kmtest.PG(t), t: t}
	kmtest.Exec(t, e.SourceURL, ddl...)
	kmtest.Exec(t, e.TargetURL, ddl...)
	return e
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (e *env) src() *pgx.Conn { return e.connect(pgutil.Source, e.SourceURL) }
func (e *env) tgt() *pgx.Conn { return e.connect(pgutil.Target, e.TargetURL) }

func (e *env) connect(side pgutil.Side, url string) *pgx.Conn {
	e.t.Helper()
	c, err := pgutil.Connect(context.Background(), side, url)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func (e *env) install(opts InstallOptions) InstallResult {
	e.t.Helper()
	res, err := Install(testCtx(e.t), e.src(), opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

// bulkCopy is a minimal stand-in for pgcopy: in one REPEATABLE READ
// transaction on the source it reads pg_current_snapshot() and COPYs every
// user table to the (empty) target, then records the baseline. between, if
// set, runs after the snapshot is taken and before the copy (concurrent
// writers).
func (e *env) bulkCopy(between func()) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	src, tgt := e.src(), e.tgt()
	tx, err := src.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		e.t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var snap string
	if err := tx.QueryRow(ctx, `SELECT pg_current_snapshot()::text`).Scan(&snap); err != nil {
		e.t.Fatal(err)
	}
	if between != nil {
		between()
	}
	tables, err := listTables(ctx, src)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := tgt.Exec(ctx, "SET session_replication_role = replica"); err != nil {
		e.t.Fatal(err)
	}
	defer tgt.Exec(ctx, "RESET session_replication_role")
	for _, tb := range tables {
		cols, err := tableColumns(ctx, src, tb.Schema, tb.Name)
		if err != nil {
			e.t.Fatal(err)
		}
		var names []string
		for _, c := range cols {
			if !c.Generated {
				names = append(names, pgutil.QuoteIdent(c.Name))
			}
		}
		list := strings.Join(names, ", ")
		pr, pw := io.Pipe()
		outErr := make(chan error, 1)
		go func() {
			_, err := tx.Conn().PgConn().CopyTo(ctx, pw, fmt.Sprintf("COPY (SELECT %s FROM %s) TO STDOUT (FORMAT binary)", list, tb.qname()))
			pw.CloseWithError(err)
			outErr <- err
		}()
		if _, err := tgt.PgConn().CopyFrom(ctx, pr, fmt.Sprintf("COPY %s (%s) FROM STDIN (FORMAT binary)", tb.qname(), list)); err != nil {
			e.t.Fatalf("copy in %s: %v", tb.display(), err)
		}
		if err := <-outErr; err != nil {
			e.t.Fatalf("copy out %s: %v", tb.display(), err)
		}
	}
	ok, err := CaptureInstalled(ctx, src)
	if err != nil {
		e.t.Fatal(err)
	}
	if ok {
		if err := RecordBaseline(ctx, tgt, snap); err != nil {
			e.t.Fatal(err)
		}
	}
	return snap
}

func (e *env) finalDelta(opts Options) Result {
	e.t.Helper()
	res, err := FinalDelta(testCtx(e.t), e.src(), e.tgt(), opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

// dump returns every user table's rows as ordered text.
func dump(t testing.TB, conn *pgx.Conn) map[string]string {
	t.Helper()
	ctx := testCtx(t)
	tables, err := listTables(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, tb := range tables {
		var s *string
		err := conn.QueryRow(ctx, fmt.Sprintf(`SELECT string_agg(x::text, E'\n' ORDER BY x::text) FROM %s x`, tb.qname())).Scan(&s)
		if err != nil {
			t.Fatalf("dump %s: %v", tb.display(), err)
		}
		if s != nil {
			out[tb.display()] = *s
		} else {
			out[tb.display()] = ""
		}
	}
	return out
}

// assertSame fails unless source and target hold the same rows table by table.
func (e *env) assertSame() {
	e.t.Helper()
	a, b := dump(e.t, e.src()), dump(e.t, e.tgt())
	if len(a) != len(b) {
		e.t.Fatalf("source has %d tables, target %d", len(a), len(b))
	}
	for name, sv := range a {
		tv, ok := b[name]
		if !ok {
			e.t.Fatalf("table %s missing on target", name)
		}
		if sv != tv {
			e.t.Fatalf("table %s differs:\nsource:\n%s\ntarget:\n%s", name, clip(sv), clip(tv))
		}
	}
}

func clip(s string) string {
	if len(s) > 3000 {
		return s[:3000] + "…"
	}
	return s
}

func (e *env) count(url, sql string) int64 {
	e.t.Helper()
	c := e.connect(pgutil.Target, url)
	var n int64
	if err := c.QueryRow(testCtx(e.t), sql).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}
