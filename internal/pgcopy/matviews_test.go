package pgcopy

import (
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
)

// TestCopyMatviewsDependencyOrder: a materialized view reads, through a
// plain view, a materialized view created after it (a lower OID than the
// one it depends on). The copy refreshes them in dependency order (in OID
// order the first refresh fails on the unpopulated one) and analyzes them.
func TestCopyMatviewsDependencyOrder(t *testing.T) {
	t.Parallel()
	e := kmtest.PG(t)
	kmtest.Exec(t, e.SourceURL, `CREATE TABLE t (x int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 20);
		CREATE VIEW v AS SELECT x FROM t;
		CREATE MATERIALIZED VIEW m_top AS SELECT sum(x) AS s, count(*) AS n FROM v;
		CREATE MATERIALIZED VIEW m_base AS SELECT x FROM t WHERE x > 5;
		CREATE OR REPLACE VIEW v AS SELECT x FROM m_base;
		REFRESH MATERIALIZED VIEW m_base; REFRESH MATERIALIZED VIEW m_top`)
	if _, err := Copy(ctxT(t), testOptions(t, e)); err != nil {
		t.Fatalf("copy: %v", err)
	}
	sameTables(t, e, 16, "public.m_base", "public.m_top")
	if n := queryInt(t, e.TargetURL, "SELECT count(*) FROM pg_stat_user_tables WHERE relname IN ('m_base', 'm_top') AND last_analyze IS NOT NULL"); n != 2 {
		t.Errorf("analyzed materialized views: %d, want 2", n)
	}
}
