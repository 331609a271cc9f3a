package pgdelta

import (
	"errors"
	"strings"
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/pgutil"
)

const monthlyDDL = `CREATE TYPE pay AS ENUM ('card', 'cash');
CREATE TABLE receipts (id int, day date, store text, amount numeric, paid pay, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
CREATE TABLE receipts_2025_01 PARTITION OF receipts FOR VALUES FROM ('2025-01-01') TO ('2025-02-01');
CREATE TABLE stores (code text PRIMARY KEY, name text)`

// monthlyGrowth adds, on the source after install, the partitions a receipts
// table grows: February created as a partition (filled, partly updated and
// deleted, truncated before any delta run knew it, refilled), March loaded
// as a table of its own and then attached (rows that were never logged,
// then updated, deleted, re-keyed and moved across partition boundaries
// before any delta run knew the partition), April created sub-partitioned
// by hash.
func monthlyGrowth(t *testing.T, url string) {
	t.Helper()
	kmtest.Exec(t, url,
		`CREATE TABLE receipts_2025_02 PARTITION OF receipts FOR VALUES FROM ('2025-02-01') TO ('2025-03-01')`,
		`INSERT INTO receipts SELECT g, '2025-02-01'::date + g % 28, 'S' || g % 3, g * 1.25, 'card' FROM generate_series(1, 60) g`,
		`UPDATE receipts SET amount = -amount WHERE day >= '2025-02-01' AND id % 7 = 0`,
		`DELETE FROM receipts WHERE day >= '2025-02-01' AND id % 11 = 0`,
		`TRUNCATE receipts_2025_02`,
		`INSERT INTO receipts SELECT g, '2025-02-10', 'S9', g, 'cash' FROM generate_series(100, 110) g`,
		`CREATE TABLE receipts_2025_03 (id int NOT NULL, day date NOT NULL, store text, amount numeric, paid pay)`,
		`INSERT INTO receipts_2025_03 SELECT g, '2025-03-01'::date + g % 31, 'S1', g, 'cash' FROM generate_series(1, 40) g`,
		`ALTER TABLE receipts ATTACH PARTITION receipts_2025_03 FOR VALUES FROM ('2025-03-01') TO ('2025-04-01')`,
		`UPDATE receipts SET store = 'moved' WHERE day >= '2025-03-01' AND id % 5 = 0`,
		`DELETE FROM receipts WHERE day >= '2025-03-01' AND day < '2025-04-01' AND id % 7 = 0`,
		`UPDATE receipts SET day = '2025-01-15' WHERE day >= '2025-03-01' AND day < '2025-04-01' AND id = 3`, // out of March
		`UPDATE receipts SET day = '2025-03-20' WHERE day < '2025-02-01' AND id = 10`,                        // into March
		`UPDATE receipts SET id = id + 1000 WHERE day >= '2025-03-01' AND day < '2025-04-01' AND id = 4`,
		`CREATE TABLE receipts_2025_04 PARTITION OF receipts FOR VALUES FROM ('2025-04-01') TO ('2025-05-01') PARTITION BY HASH (id)`,
		`CREATE TABLE receipts_2025_04_h0 PARTITION OF receipts_2025_04 FOR VALUES WITH (MODULUS 2, REMAINDER 0)`,
		`CREATE TABLE receipts_2025_04_h1 PARTITION OF receipts_2025_04 FOR VALUES WITH (MODULUS 2, REMAINDER 1)`,
		`INSERT INTO receipts SELECT g, '2025-04-15', 'S2', g, NULL FROM generate_series(1, 30) g`,
		`INSERT INTO stores VALUES ('S1', 'one')`)
}

// partitionLayout is every receipts row count per partition and each
// partition's bounds, as the catalog of conn sees them.
func partitionLayout(t testing.TB, e *env, url string) string {
	t.Helper()
	c := e.connect(pgutil.Source, url)
	var s string
	err := c.QueryRow(testCtx(t), `SELECT string_agg(format('%s %s %s', c.relname, pg_get_expr(c.relpartbound, c.oid),
			(SELECT count(*) FROM receipts r WHERE r.tableoid = c.oid)), E'\n' ORDER BY c.relname)
		FROM pg_partition_tree('receipts') p JOIN pg_class c ON c.oid = p.relid WHERE p.level > 0`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) assertSamePartitions() {
	e.t.Helper()
	src, tgt := partitionLayout(e.t, e, e.SourceURL), partitionLayout(e.t, e, e.TargetURL)
	if src != tgt {
		e.t.Fatalf("partitions differ:\nsource:\n%s\ntarget:\n%s", src, tgt)
	}
}

// TestPartitionsFollow: partitions created or attached after install are
// created on the target with the same bounds by the next final-delta and
// all their rows arrive, including rows of an attached table that were
// never logged and rows truncated before kwickmig knew the partition.
func TestPartitionsFollow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, monthlyDDL)
	kmtest.Exec(t, e.SourceURL, `INSERT INTO receipts SELECT g, '2025-01-01'::date + g % 31, 'S1', g, 'card' FROM generate_series(1, 50) g`)
	e.install(InstallOptions{})
	e.bulkCopy(nil)
	monthlyGrowth(t, e.SourceURL)
	st, err := CaptureStatus(testCtx(t), e.src())
	if err != nil || len(st.Drift) != 0 || strings.Join(st.NewPartitions, ", ") != "public.receipts_2025_02 of public.receipts, public.receipts_2025_03 of public.receipts, public.receipts_2025_04 of public.receipts, public.receipts_2025_04_h0 of public.receipts_2025_04, public.receipts_2025_04_h1 of public.receipts_2025_04" {
		t.Fatalf("status before the take-over: new partitions %q, drift %q, err=%v", st.NewPartitions, st.Drift, err)
	}
	e.finalDelta(Options{BatchRows: 17})
	if st, err := CaptureStatus(testCtx(t), e.src()); err != nil || len(st.NewPartitions) != 0 {
		t.Fatalf("status after the take-over: new partitions %q, err=%v", st.NewPartitions, err)
	}
	e.assertSame()
	e.assertSamePartitions()
	// the new partitions got their TRUNCATE trigger on the source
	if n := e.count(e.SourceURL, `SELECT count(*) FROM pg_trigger WHERE tgname = 'kwickmig_capture_truncate' AND tgenabled = 'A'`); n != 8 {
		t.Fatalf("%d TRUNCATE triggers on the source, want 8 (parent and 7 partitions)", n)
	}
	// later changes, a TRUNCATE of a taken-over partition among them
	kmtest.Exec(t, e.SourceURL,
		`TRUNCATE receipts_2025_02`,
		`INSERT INTO receipts VALUES (1, '2025-02-02', 'late', 1, 'cash')`,
		`UPDATE receipts SET amount = 0 WHERE day >= '2025-03-01' AND id < 5`,
		`DELETE FROM receipts WHERE day = '2025-04-15' AND id > 25`)
	res := e.finalDelta(Options{})
	if res.Rows != 1+1+6+5 {
		t.Fatalf("second round applied %d changes, want 13 (taken-over partitions are logged once)", res.Rows)
	}
	e.assertSame()
	e.assertSamePartitions()
}

// TestPartitionsFollowOffline: the same through final-delta --out and
// import-delta: the round's manifest carries the partitions.
func TestPartitionsFollowOffline(t *testing.T) {
	t.Parallel()
	e := newEnv(t, monthlyDDL)
	kmtest.Exec(t, e.SourceURL, `INSERT INTO receipts SELECT g, '2025-01-01'::date + g % 31, 'S1', g, 'card' FROM generate_series(1, 50) g`)
	e.install(InstallOptions{})
	e.bulkCopy(nil)
	monthlyGrowth(t, e.SourceURL)
	dir := DirStore(t.TempDir())
	ctx := testCtx(t)
	if _, err := Export(ctx, e.src(), dir, Options{BatchRows: 17}); err != nil {
		t.Fatal(err)
	}
	if _, err := Import(ctx, e.tgt(), dir, Options{}); err != nil {
		t.Fatal(err)
	}
	e.assertSame()
	e.assertSamePartitions()
	// a partition dropped on the source: the next import refuses it by name
	// before applying anything of its round
	kmtest.Exec(t, e.SourceURL, `DROP TABLE receipts_2025_01`, `INSERT INTO stores VALUES ('S2', 'two')`)
	if _, err := Export(ctx, e.src(), dir, Options{}); err != nil {
		t.Fatal(err)
	}
	_, err := Import(ctx, e.tgt(), dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "partition public.receipts_2025_01 of public.receipts is no longer a partition on the source") {
		t.Fatalf("import after a dropped partition: err=%v, want a refusal naming it", err)
	}
	if n := e.count(e.TargetURL, `SELECT count(*) FROM stores`); n != 1 {
		t.Fatalf("target stores has %d rows after the refusal, want 1 (nothing applied)", n)
	}
	kmtest.Exec(t, e.TargetURL, `DROP TABLE receipts_2025_01`)
	if _, err := Import(ctx, e.tgt(), dir, Options{}); err != nil {
		t.Fatal(err)
	}
	e.assertSame()
	e.assertSamePartitions()
}

// TestPartitionDetachDropRefused: a detached or dropped partition stops
// final-delta before anything is applied, naming it, and capture status
// shows it; once it is gone from the target too, the run goes on.
func TestPartitionDetachDropRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, monthlyDDL+`;
		CREATE TABLE receipts_2025_02 PARTITION OF receipts FOR VALUES FROM ('2025-02-01') TO ('2025-03-01')`)
	kmtest.Exec(t, e.SourceURL, `INSERT INTO receipts SELECT g, '2025-01-01'::date + g, 'S1', g, 'card' FROM generate_series(1, 50) g`)
	e.install(InstallOptions{})
	e.bulkCopy(nil)
	ctx := testCtx(t)

	kmtest.Exec(t, e.SourceURL, `ALTER TABLE receipts DETACH PARTITION receipts_2025_01`, `INSERT INTO stores VALUES ('S1', 'one')`)
	_, err := FinalDelta(ctx, e.src(), e.tgt(), Options{})
	if !errors.Is(err, ErrSchemaChanged) || !strings.Contains(err.Error(), "public.receipts_2025_01 (detached from public.receipts") {
		t.Fatalf("final-delta after a detach: err=%v, want a refusal naming the partition", err)
	}
	st, err := CaptureStatus(ctx, e.src())
	if err != nil || !strings.Contains(strings.Join(st.Drift, "\n"), "public.receipts_2025_01 (detached from public.receipts") {
		t.Fatalf("status drift %q, err=%v; want the detached partition", st.Drift, err)
	}

	kmtest.Exec(t, e.SourceURL, `DROP TABLE receipts_2025_01`)
	_, err = FinalDelta(ctx, e.src(), e.tgt(), Options{})
	if !errors.Is(err, ErrSchemaChanged) || !strings.Contains(err.Error(), "partition public.receipts_2025_01 of public.receipts is no longer a partition on the source") {
		t.Fatalf("final-delta after a drop: err=%v, want a refusal naming the partition", err)
	}
	st, err = CaptureStatus(ctx, e.src())
	if err != nil || !strings.Contains(strings.Join(st.Drift, "\n"), "public.receipts_2025_01 (partition of public.receipts detached or dropped") {
		t.Fatalf("status drift %q, err=%v; want the dropped partition", st.Drift, err)
	}
	if n := e.count(e.TargetURL, `SELECT count(*) FROM stores`); n != 0 {
		t.Fatalf("target stores has %d rows after the refusals, want 0 (nothing applied)", n)
	}

	kmtest.Exec(t, e.TargetURL, `DROP TABLE receipts_2025_01`)
	e.finalDelta(Options{})
	e.assertSame()
	e.assertSamePartitions()
	if st, err := CaptureStatus(ctx, e.src()); err != nil || len(st.Drift) != 0 {
		t.Fatalf("status drift %q, err=%v; want none once both sides dropped it", st.Drift, err)
	}

	// dropping a partition straight away (retention) is refused as well
	kmtest.Exec(t, e.SourceURL, `DROP TABLE receipts_2025_02`)
	_, err = FinalDelta(ctx, e.src(), e.tgt(), Options{})
	if err == nil || !strings.Contains(err.Error(), "partition public.receipts_2025_02 of public.receipts") {
		t.Fatalf("final-delta after dropping receipts_2025_02: err=%v, want a refusal naming it", err)
	}
}

// TestExportRefusesPartitionArrivingMidExport: a partition that appears
// after an export took over the partitions and before its manifest is
// written (simulated by calling the manifest step directly) refuses the
// round instead of exporting rows the target could not place; the next
// export takes it over and the import is exact.
func TestExportRefusesPartitionArrivingMidExport(t *testing.T) {
	t.Parallel()
	e := newEnv(t, monthlyDDL)
	e.install(InstallOptions{})
	e.bulkCopy(nil)
	ctx := testCtx(t)
	kmtest.Exec(t, e.SourceURL,
		`CREATE TABLE receipts_2025_02 (id int NOT NULL, day date NOT NULL, store text, amount numeric, paid pay)`,
		`INSERT INTO receipts_2025_02 VALUES (1, '2025-02-02', 'S1', 1, 'cash')`,
		`ALTER TABLE receipts ATTACH PARTITION receipts_2025_02 FOR VALUES FROM ('2025-02-01') TO ('2025-03-01')`,
		`DELETE FROM receipts WHERE id = 1`)
	m := manifest{Round: 1}
	err := completeManifest(ctx, e.src(), &m)
	if err == nil || !strings.Contains(err.Error(), "partition public.receipts_2025_02 of public.receipts appeared while round 1 was being exported") {
		t.Fatalf("manifest with an unknown partition: err=%v, want a refusal naming it", err)
	}
	dir := DirStore(t.TempDir())
	if _, err := Export(ctx, e.src(), dir, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Import(ctx, e.tgt(), dir, Options{}); err != nil {
		t.Fatal(err)
	}
	e.assertSame()
	e.assertSamePartitions()
}
