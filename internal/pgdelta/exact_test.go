package pgdelta

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/kmtest"
)

const exactDDL = `CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL);
CREATE TABLE note (id int PRIMARY KEY, txt text)`

func exactEnv(t *testing.T) *env {
	e := newEnv(t, exactDDL)
	kmtest.Exec(t, e.SourceURL, `INSERT INTO acct SELECT g, 100 FROM generate_series(1, 10) g`)
	e.install(InstallOptions{})
	e.bulkCopy(nil)
	return e
}

// TestApplyExactRowCounts: every applied statement must touch exactly the
// rows the log names. A row deleted or inserted directly on the target makes
// the round fail naming the table and key, with nothing of it applied; once
// the target is repaired the next run ends identical.
func TestApplyExactRowCounts(t *testing.T) {
	e := exactEnv(t)
	for _, tc := range []struct {
		name     string
		onTarget string // the direct change that makes the target differ
		onSource string // the logged change that meets it
		want     string
		repair   string
	}{
		{"update of a row deleted on the target", `DELETE FROM acct WHERE id = 3`, `UPDATE acct SET bal = bal + 1 WHERE id IN (3, 4)`,
			"update public.acct: 1 of 2 rows not found on the target: (id)=(3)", `INSERT INTO acct VALUES (3, 100)`},
		{"delete of a row deleted on the target", `DELETE FROM acct WHERE id = 5`, `DELETE FROM acct WHERE id IN (5, 6)`,
			"delete from public.acct: 1 of 2 rows not found on the target: (id)=(5)", `INSERT INTO acct VALUES (5, 100)`},
		{"insert of a key inserted on the target", `INSERT INTO acct VALUES (20, 1)`, `INSERT INTO acct VALUES (20, 2), (21, 2)`,
			"Key (id)=(20) already exists", `DELETE FROM acct WHERE id = 20`},
		{"key change onto a key inserted on the target", `INSERT INTO acct VALUES (30, 1)`, `UPDATE acct SET id = 30 WHERE id = 7`,
			"Key (id)=(30) already exists", `DELETE FROM acct WHERE id = 30`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kmtest.Exec(t, e.TargetURL, tc.onTarget)
			kmtest.Exec(t, e.SourceURL, tc.onSource, `INSERT INTO note SELECT coalesce(max(id), 0) + 1, 'same round' FROM note`)
			before := dump(t, e.tgt())
			_, err := FinalDelta(testCtx(t), e.src(), e.tgt(), Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "target: ") {
				t.Fatalf("final-delta: %v\nwant an error containing %q", err, tc.want)
			}
			t.Log(err)
			after := dump(t, e.tgt())
			for name, rows := range before {
				if after[name] != rows {
					t.Fatalf("%s changed on the target though the round failed:\n%s\n→\n%s", name, rows, after[name])
				}
			}
			kmtest.Exec(t, e.TargetURL, tc.repair)
			e.finalDelta(Options{})
			e.assertSame()
		})
	}
}

// TestFinalDeltaLockTimeout: a session left idle in a transaction on the
// target holding a row lock the apply needs (a forgotten psql, a dead
// client) ends final-delta after --lock-timeout, naming its pid, user,
// application, state and age; nothing of the round is applied.
func TestFinalDeltaLockTimeout(t *testing.T) {
	e := exactEnv(t)
	ctx := testCtx(t)
	holder := e.tgt()
	if _, err := holder.Exec(ctx, `SET application_name = 'forgotten psql'`); err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(ctx, `BEGIN; UPDATE acct SET bal = bal WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	kmtest.Exec(t, e.SourceURL, `UPDATE acct SET bal = 1 WHERE id IN (1, 2)`)
	start := time.Now()
	_, err := FinalDelta(ctx, e.src(), e.tgt(), Options{LockTimeout: 2 * time.Second})
	took := time.Since(start)
	t.Logf("after %s: %v", took.Round(time.Millisecond), err)
	if err == nil {
		t.Fatal("final-delta succeeded past a held lock")
	}
	pid := holder.PgConn().PID()
	for _, want := range []string{"target: ", "pid " + strconv.Itoa(int(pid)), `application "forgotten psql"`, "idle in transaction", "transaction open for", "pg_terminate_backend(" + strconv.Itoa(int(pid)) + ")"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q", want)
		}
	}
	if took > 8*time.Second {
		t.Fatalf("took %s with a 2s lock timeout", took)
	}
	if n := e.count(e.TargetURL, `SELECT count(*) FROM acct WHERE bal = 1`); n != 0 {
		t.Fatalf("%d rows of the failed round applied", n)
	}
	if _, err := holder.Exec(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	e.finalDelta(Options{LockTimeout: 2 * time.Second})
	e.assertSame()
}

// TestTickSchemaCheckOneSnapshot: a column added on the source after
// final-delta's first schema check and before its tick is caught by the
// check taken in the tick's own snapshot: the round is refused and nothing
// is applied.
func TestTickSchemaCheckOneSnapshot(t *testing.T) {
	e := exactEnv(t)
	kmtest.Exec(t, e.SourceURL, `UPDATE acct SET bal = 7 WHERE id = 1`)
	testHookBeforeTick = func(context.Context) {
		kmtest.Exec(t, e.SourceURL, `ALTER TABLE acct ADD COLUMN extra int DEFAULT 5`, `UPDATE acct SET bal = 8 WHERE id = 2`)
	}
	t.Cleanup(func() { testHookBeforeTick = nil })
	_, err := FinalDelta(testCtx(t), e.src(), e.tgt(), Options{})
	if !errors.Is(err, ErrSchemaChanged) || !strings.Contains(err.Error(), "acct") {
		t.Fatalf("final-delta: %v, want a schema change naming acct", err)
	}
	if n := e.count(e.TargetURL, `SELECT count(*) FROM acct WHERE bal <> 100`); n != 0 {
		t.Fatalf("%d changes applied despite the schema change", n)
	}
}

// TestDeltaLockHolderNamed: an earlier run's session still holding the
// target's delta lock (its client gone, the server not yet aware) is named
// with its pid and age, so the operator can end it.
func TestDeltaLockHolderNamed(t *testing.T) {
	e := exactEnv(t)
	ctx := testCtx(t)
	stuck := e.tgt()
	if _, err := stuck.Exec(ctx, `SET application_name = 'kwickmig'`); err != nil {
		t.Fatal(err)
	}
	if _, err := stuck.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(lockKey)); err != nil {
		t.Fatal(err)
	}
	_, err := FinalDelta(ctx, e.src(), e.tgt(), Options{})
	pid := strconv.Itoa(int(stuck.PgConn().PID()))
	if err == nil || !strings.Contains(err.Error(), "pid "+pid) || !strings.Contains(err.Error(), "pg_terminate_backend("+pid+")") {
		t.Fatalf("final-delta: %v, want the holder's pid %s", err, pid)
	}
	t.Log(err)
}

// TestExactAfterPartitionTakeOver: changes logged before a partition
// take-over are applied leniently (the take-over replaces the partition's
// content), later ones exactly: a row deleted on the target and then
// updated on the source after the take-over still fails naming its key.
func TestExactAfterPartitionTakeOver(t *testing.T) {
	e := newEnv(t, monthlyDDL)
	kmtest.Exec(t, e.SourceURL, `INSERT INTO receipts SELECT g, '2025-01-01'::date + g % 31, 'S1', g, 'card' FROM generate_series(1, 50) g`)
	e.install(InstallOptions{})
	e.bulkCopy(nil)
	monthlyGrowth(t, e.SourceURL) // March attached with unlogged rows, then updated
	e.finalDelta(Options{BatchRows: 17})
	e.assertSame()
	kmtest.Exec(t, e.TargetURL, `DELETE FROM receipts WHERE id = 10 AND day = '2025-03-11'`)
	kmtest.Exec(t, e.SourceURL, `UPDATE receipts SET store = 'late' WHERE id = 10 AND day = '2025-03-11'`)
	_, err := FinalDelta(testCtx(t), e.src(), e.tgt(), Options{})
	if err == nil || !strings.Contains(err.Error(), "update public.receipts") || !strings.Contains(err.Error(), "(id, day)=(10, 2025-03-11)") {
		t.Fatalf("final-delta: %v, want the missing key named", err)
	}
}

// TestTakeOverOfReferencedPartition: a partition a foreign key references
// is taken over without a TRUNCATE, so the take-over's inserts meet the rows
// the round's earlier inserts already put there; up to the take-over those
// apply as upserts, and the target ends identical.
func TestTakeOverOfReferencedPartition(t *testing.T) {
	e := newEnv(t, monthlyDDL+`;
CREATE TABLE refunds (id int PRIMARY KEY, rid int NOT NULL, rday date NOT NULL, FOREIGN KEY (rid, rday) REFERENCES receipts (id, day))`)
	e.install(InstallOptions{})
	e.bulkCopy(nil)
	kmtest.Exec(t, e.SourceURL,
		`CREATE TABLE receipts_2025_02 PARTITION OF receipts FOR VALUES FROM ('2025-02-01') TO ('2025-03-01')`,
		`INSERT INTO receipts SELECT g, '2025-02-01'::date + g % 28, 'S1', g, 'card' FROM generate_series(1, 20) g`,
		`UPDATE receipts SET amount = 0 WHERE id = 3`,
		`INSERT INTO refunds VALUES (1, 3, '2025-02-04')`)
	e.finalDelta(Options{})
	e.assertSame()
	kmtest.Exec(t, e.SourceURL, `UPDATE receipts SET amount = 1 WHERE id = 4`)
	e.finalDelta(Options{})
	e.assertSame()
}
