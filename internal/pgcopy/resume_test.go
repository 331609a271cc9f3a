package pgcopy

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/pgdelta"
)

// TestResumeMovedRows: a copy of a split table stops after two of its
// parts; the source then updates a third of the rows (their new versions go
// to the table's last pages), deletes and inserts some, and adds rows to a
// table without a key. The resumed copy must not duplicate any row (the
// primary key builds), and after final-delta both tables are identical to
// the source: the keyless table was reloaded in the new snapshot and its
// changes from before that snapshot are not applied again.
func TestResumeMovedRows(t *testing.T) {
	t.Parallel()
	e := kmtest.PG(t)
	kmtest.Exec(t, e.SourceURL, `CREATE TABLE big (id int PRIMARY KEY, v text, pad text);
		INSERT INTO big SELECT i, 'v' || i, repeat('p', 60) FROM generate_series(1, 30000) i;
		CREATE TABLE audit (v text); INSERT INTO audit SELECT 'a' || i FROM generate_series(1, 100) i;
		ANALYZE big`)
	src := mustConnect(t, e.SourceURL)
	if _, err := pgdelta.Install(ctxT(t), src, pgdelta.InstallOptions{AllowNoKey: true}); err != nil {
		t.Fatalf("capture install: %v", err)
	}
	opts := testOptions(t, e)
	opts.SplitLargerThan = 256 << 10
	opts.Jobs = 1
	var loaded atomic.Int32
	induced := errors.New("induced failure")
	opts.testHookPartLoaded = func(p *Part) error {
		if loaded.Add(1) == 2 {
			return induced
		}
		return nil
	}
	if _, err := Copy(ctxT(t), opts); !errors.Is(err, induced) {
		t.Fatalf("first run err=%v, want the induced failure", err)
	}
	if n := queryInt(t, e.TargetURL, "SELECT count(*) FROM big"); n == 0 || n >= 30000 {
		t.Fatalf("after the failure target has %d rows, want a partial load", n)
	}
	// Rows move to later pages; the keyless table grows.
	kmtest.Exec(t, e.SourceURL, `UPDATE big SET v = v || 'u' WHERE id % 3 = 0;
		DELETE FROM big WHERE id % 100 = 1; INSERT INTO big SELECT i, 'new', 'n' FROM generate_series(30001, 30500) i;
		INSERT INTO audit SELECT 'b' || i FROM generate_series(1, 50) i; DELETE FROM audit WHERE v = 'a7'`)

	opts.testHookPartLoaded = nil
	opts.Resume = true
	res, err := Copy(ctxT(t), opts)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	rows, keys := queryInt(t, e.TargetURL, "SELECT count(*) FROM big"), queryInt(t, e.TargetURL, "SELECT count(DISTINCT id) FROM big")
	if want := queryInt(t, e.SourceURL, "SELECT count(*) FROM big"); rows != want || keys != want {
		t.Errorf("after resume target has %d rows, %d keys; source %d", rows, keys, want)
	}
	if n := queryInt(t, e.TargetURL, "SELECT count(*) FROM pg_index WHERE indrelid = 'big'::regclass AND indisprimary"); n != 1 {
		t.Errorf("primary key of big on target: %d, want 1", n)
	}
	if n := queryInt(t, e.TargetURL, "SELECT count(*) FROM kwickmig.table_snapshots WHERE table_name IN ('big', 'audit')"); n != 2 {
		t.Errorf("tables recorded with a later snapshot: %d, want 2 (big, audit)", n)
	}
	if !res.Baseline {
		t.Fatalf("resumed copy recorded no baseline")
	}

	// Changes after the resume, then the final delta.
	kmtest.Exec(t, e.SourceURL, `UPDATE big SET v = 'late' WHERE id % 7 = 0; DELETE FROM big WHERE id % 50 = 2;
		INSERT INTO audit VALUES ('late'); DELETE FROM audit WHERE v = 'a9'`)
	ctx := ctxT(t)
	dst := mustConnect(t, e.TargetURL)
	if _, err := pgdelta.FinalDelta(ctx, src, dst, pgdelta.Options{}); err != nil {
		t.Fatalf("final-delta: %v", err)
	}
	sameTables(t, e, 29000, "public.big", "public.audit")
}

// TestResumeCatchUp: a copy stops once a split parent table is loaded and
// before its small child table is. The source then changes parents and
// adds children of new parents. The resumed copy reads the child in the
// new snapshot, and brings the parent to it through the change log before
// the foreign keys are built (mixed, the key would reject the new
// children); after final-delta both are identical to the source, no change
// applied twice.
func TestResumeCatchUp(t *testing.T) {
	t.Parallel()
	e := kmtest.PG(t)
	kmtest.Exec(t, e.SourceURL, `CREATE TABLE parent (id int PRIMARY KEY, name text);
		INSERT INTO parent SELECT i, repeat('n', 100) FROM generate_series(1, 5000) i;
		CREATE TABLE child (id int PRIMARY KEY, parent int NOT NULL REFERENCES parent ON DELETE CASCADE);
		INSERT INTO child SELECT i, i FROM generate_series(1, 50) i`)
	src := mustConnect(t, e.SourceURL)
	if _, err := pgdelta.Install(ctxT(t), src, pgdelta.InstallOptions{}); err != nil {
		t.Fatalf("capture install: %v", err)
	}
	opts := testOptions(t, e)
	opts.SplitLargerThan = 256 << 10
	opts.Jobs = 1
	induced := errors.New("induced failure")
	opts.testHookPartLoaded = func(p *Part) error {
		if p.Table.Name == "parent" && queryInt(t, e.TargetURL, "SELECT count(*) FROM parent") == 5000 {
			return induced
		}
		return nil
	}
	if _, err := Copy(ctxT(t), opts); !errors.Is(err, induced) {
		t.Fatalf("first run err=%v, want the induced failure", err)
	}
	if n := queryInt(t, e.TargetURL, "SELECT count(*) FROM child"); n != 0 {
		t.Fatalf("child loaded before the failure (%d rows): the test needs it pending", n)
	}
	kmtest.Exec(t, e.SourceURL, `INSERT INTO parent SELECT i, 'new' FROM generate_series(6001, 6020) i;
		INSERT INTO child SELECT i, 6001 + i % 20 FROM generate_series(101, 200) i;
		UPDATE parent SET name = 'changed' WHERE id % 9 = 0; DELETE FROM parent WHERE id = 7`)

	// The first resume dies right after its catch-up committed, before the
	// checkpoint knows: the next resume must follow the target's record,
	// not apply the same changes again.
	opts.testHookPartLoaded = nil
	opts.Resume = true
	opts.testHookCaughtUp = func() error { return induced }
	if _, err := Copy(ctxT(t), opts); !errors.Is(err, induced) {
		t.Fatalf("resume with a failure after the catch-up: err=%v, want the induced failure", err)
	}
	kmtest.Exec(t, e.SourceURL, `INSERT INTO parent VALUES (6100, 'between'); INSERT INTO child VALUES (300, 6100);
		UPDATE parent SET name = name || '+' WHERE id % 13 = 0`)
	opts.testHookCaughtUp = nil
	res, err := Copy(ctxT(t), opts)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if n := queryInt(t, e.TargetURL, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'child'::regclass AND contype = 'f'"); n != 1 {
		t.Errorf("foreign key of child on target: %d, want 1", n)
	}
	sameTables(t, e, 5000, "public.parent", "public.child")
	if n := queryInt(t, e.TargetURL, "SELECT count(*) FROM kwickmig.copy_catchup WHERE table_name = 'parent'"); n != 2 {
		t.Errorf("catch-ups of parent recorded: %d, want 2 (first snapshot to second, second to third)", n)
	}
	if !res.Baseline {
		t.Fatalf("resumed copy recorded no baseline")
	}
	kmtest.Exec(t, e.SourceURL, `UPDATE parent SET name = 'late' WHERE id % 11 = 0; DELETE FROM parent WHERE id = 6005;
		INSERT INTO child VALUES (1000, 6001)`)
	if _, err := pgdelta.FinalDelta(ctxT(t), src, mustConnect(t, e.TargetURL), pgdelta.Options{}); err != nil {
		t.Fatalf("final-delta: %v", err)
	}
	sameTables(t, e, 5000, "public.parent", "public.child")
}
