package pgdelta

import (
	"context"
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/pgutil"
	"github.com/kwick/kwickmig/internal/verify"
)

const matviewDDL = `
CREATE TABLE sales (id int PRIMARY KEY, store int NOT NULL, amount numeric(10,2));
CREATE TABLE other (id int PRIMARY KEY);
CREATE VIEW positive_sales AS SELECT store, amount FROM sales WHERE amount > 0;
CREATE MATERIALIZED VIEW store_totals AS SELECT store, sum(amount) AS total, count(*) AS n FROM positive_sales GROUP BY store;
CREATE MATERIALIZED VIEW big_stores AS SELECT store FROM store_totals WHERE total > 500;
CREATE MATERIALIZED VIEW other_count AS SELECT count(*) AS n FROM other;`

// TestMatviewsRefreshed: materialized views over captured tables (one
// through a plain view, one over another materialized view) are refreshed
// on the target by the round that changed their tables, in dependency
// order. With NoRefreshMatviews they stay stale, verify db reports them,
// and the changed tables stay pending: the next round, though it changes
// nothing, refreshes them.
func TestMatviewsRefreshed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, matviewDDL)
	kmtest.Exec(t, e.SourceURL, `INSERT INTO sales SELECT g, g % 10, g FROM generate_series(1, 100) g; INSERT INTO other VALUES (1)`)
	e.install(InstallOptions{})
	e.bulkCopy(nil)
	refreshAll := `REFRESH MATERIALIZED VIEW store_totals; REFRESH MATERIALIZED VIEW big_stores; REFRESH MATERIALIZED VIEW other_count`
	kmtest.Exec(t, e.SourceURL, refreshAll)
	kmtest.Exec(t, e.TargetURL, refreshAll) // as db copy does
	views := []string{"store_totals", "big_stores", "other_count"}
	sameViews(t, e, views...)

	kmtest.Exec(t, e.SourceURL, `INSERT INTO sales SELECT g, g % 3, g * 2 FROM generate_series(101, 200) g;
		UPDATE sales SET amount = -amount WHERE id % 7 = 0; DELETE FROM sales WHERE id % 11 = 0`, refreshAll)
	e.finalDelta(Options{NoRefreshMatviews: true})
	e.assertSame()
	if viewText(t, e, e.SourceURL, "store_totals") == viewText(t, e, e.TargetURL, "store_totals") {
		t.Fatalf("with NoRefreshMatviews the target's store_totals changed")
	}
	res, err := verify.VerifyDB(testCtx(t), verify.DBOptions{Source: e.SourceURL, Target: e.TargetURL})
	if err != nil {
		t.Fatal(err)
	}
	stale := map[string]bool{}
	for _, tr := range res.Tables {
		if tr.Differs() {
			stale[tr.Table] = true
		}
	}
	if !stale["public.store_totals"] || !stale["public.big_stores"] || len(stale) != 2 || res.OK() {
		t.Errorf("verify db found differing %v, want exactly the two stale views", stale)
	}
	if n := e.count(e.TargetURL, "SELECT count(*) FROM kwickmig.matview_pending"); n != 1 {
		t.Errorf("pending tables after a round without refresh = %d, want 1 (sales)", n)
	}

	e.finalDelta(Options{}) // no change since: the pending refresh runs
	sameViews(t, e, views...)
	if n := e.count(e.TargetURL, "SELECT count(*) FROM kwickmig.matview_pending"); n != 0 {
		t.Errorf("pending tables after the refresh = %d, want 0", n)
	}
	if n := e.count(e.TargetURL, "SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'store_totals' AND last_analyze IS NOT NULL"); n != 1 {
		t.Errorf("store_totals not analyzed after its refresh")
	}
	res, err = verify.VerifyDB(testCtx(t), verify.DBOptions{Source: e.SourceURL, Target: e.TargetURL})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Errorf("verify db after the refresh: not OK: %+v", res.Schema)
	}
}

func viewText(t *testing.T, e *env, url, view string) string {
	t.Helper()
	c := e.connect(pgutil.Target, url)
	var s *string
	if err := c.QueryRow(context.Background(), "SELECT string_agg(x::text, E'\\n' ORDER BY x::text) FROM "+view+" x").Scan(&s); err != nil {
		t.Fatalf("%s: %v", view, err)
	}
	if s == nil {
		return ""
	}
	return *s
}

func sameViews(t *testing.T, e *env, views ...string) {
	t.Helper()
	for _, v := range views {
		if a, b := viewText(t, e, e.SourceURL, v), viewText(t, e, e.TargetURL, v); a != b || a == "" {
			t.Errorf("materialized view %s: source %q, target %q", v, clip(a), clip(b))
		}
	}
}
