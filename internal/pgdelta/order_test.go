package pgdelta

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/pgutil"
)

// appliedTotal is the sum of rows_applied over the target's rounds.
func (e *env) appliedTotal() int64 {
	return e.count(e.TargetURL, `SELECT coalesce(sum(rows_applied), 0) FROM kwickmig.rounds`)
}

// TestOutOfOrderCommit: T1 writes first (lower log ids) and commits last;
// T2 writes later and commits first; a round runs between the commits. A
// log-id watermark would lose T1's changes; ticks must not.
func TestOutOfOrderCommit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, simpleDDL)
	kmtest.Exec(t, e.SourceURL, `INSERT INTO items (id, name, qty) SELECT g, 'n' || g, g FROM generate_series(1, 10) g`)
	e.install(InstallOptions{})
	e.bulkCopy(nil)
	ctx := testCtx(t)
	c1, c2 := e.src(), e.src()
	t1, err := c1.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t2, err := c2.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`INSERT INTO items (id, name) VALUES (100, 't1-first')`, `UPDATE items SET qty = 111 WHERE id = 1`, `DELETE FROM items WHERE id = 2`} {
		if _, err := t1.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []string{`INSERT INTO items (id, name) VALUES (200, 't2-second')`, `UPDATE items SET qty = 222 WHERE id = 3`} {
		if _, err := t2.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := t2.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r1 := e.finalDelta(Options{})
	if r1.Rows != 2 {
		t.Fatalf("round 1 applied %d rows, want 2 (T2 only; T1 still running)", r1.Rows)
	}
	if n := e.count(e.TargetURL, `SELECT count(*) FROM items WHERE id = 100`); n != 0 {
		t.Fatalf("uncommitted T1 row on target")
	}
	if err := t1.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r2 := e.finalDelta(Options{})
	if r2.Rows != 3 {
		t.Fatalf("round 2 applied %d rows, want 3 (T1's late commit)", r2.Rows)
	}
	e.assertSame()
	r3 := e.finalDelta(Options{})
	if r3.Rows != 0 {
		t.Fatalf("round 3 applied %d rows, want 0", r3.Rows)
	}
	if got, want := e.appliedTotal(), e.count(e.SourceURL, `SELECT count(*) FROM kwickmig.log`); got != want {
		t.Fatalf("applied %d changes in all, log has %d", got, want)
	}
}

// writers runs n goroutines of short random transactions against the
// source until stop is called; transactions deliberately overlap and commit
// in an order unrelated to their first write.
type writers struct {
	stop    func()
	wg      sync.WaitGroup
	commits atomic.Int64
}

func startWriters(t *testing.T, url string, n int) *writers {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &writers{stop: cancel}
	for i := 0; i < n; i++ {
		c, err := pgutil.Connect(ctx, pgutil.Source, url)
		if err != nil {
			t.Fatal(err)
		}
		w.wg.Add(1)
		go func(i int) {
			defer w.wg.Done()
			defer c.Close(context.Background())
			rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			for ctx.Err() == nil {
				err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
					for k := 0; k < 1+rng.IntN(4); k++ {
						id := rng.IntN(300) + 1
						var q string
						switch rng.IntN(5) {
						case 0, 1:
							q = fmt.Sprintf(`INSERT INTO items (id, name, qty) VALUES (%d, 'w%d', %d) ON CONFLICT (id) DO UPDATE SET qty = items.qty + 1`, id, i, rng.IntN(1000))
						case 2:
							q = fmt.Sprintf(`UPDATE items SET qty = coalesce(qty, 0) - 1, note = 'u%d' WHERE id = %d`, i, id)
						case 3:
							q = fmt.Sprintf(`DELETE FROM items WHERE id = %d`, id)
						case 4:
							q = fmt.Sprintf(`UPDATE items SET id = %d WHERE id = %d AND NOT EXISTS (SELECT 1 FROM items WHERE id = %d)`, id+300, id, id+300)
						}
						if _, err := tx.Exec(ctx, q); err != nil {
							return err
						}
						if rng.IntN(3) == 0 {
							time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
						}
					}
					if rng.IntN(10) == 0 {
						return errors.New("rollback on purpose")
					}
					return nil
				})
				if err == nil {
					w.commits.Add(1)
				}
			}
		}(i)
	}
	return w
}

func (w *writers) halt() { w.stop(); w.wg.Wait() }

// TestConcurrentWritersDuringCopyAndRounds: writers run through the bulk
// copy and several delta rounds; after they stop and a last round runs,
// source and target are identical table by table.
func TestConcurrentWritersDuringCopyAndRounds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, simpleDDL)
	kmtest.Exec(t, e.SourceURL, `INSERT INTO items (id, name, qty) SELECT g, 'n' || g, g FROM generate_series(1, 200) g`)
	e.install(InstallOptions{})
	w := startWriters(t, e.SourceURL, 4)
	defer w.halt()
	e.bulkCopy(func() { time.Sleep(150 * time.Millisecond) })
	for i := 0; i < 4; i++ {
		time.Sleep(100 * time.Millisecond)
		e.finalDelta(Options{BatchRows: 50})
	}
	w.halt()
	e.finalDelta(Options{BatchRows: 50})
	if w.commits.Load() < 50 {
		t.Fatalf("only %d writer commits; the test did not exercise concurrency", w.commits.Load())
	}
	e.assertSame()
	t.Logf("%d writer transactions committed, %d changes applied", w.commits.Load(), e.appliedTotal())
}

// TestCrashMidRound: the first run dies after some batches committed (its
// context is cancelled; then its target connection is killed inside a batch
// transaction); the next runs finish the round and apply nothing twice.
func TestCrashMidRound(t *testing.T) {
	e := newEnv(t, simpleDDL)
	kmtest.Exec(t, e.SourceURL, `INSERT INTO items (id, name, qty) SELECT g, 'n' || g, g FROM generate_series(1, 100) g`)
	e.install(InstallOptions{})
	e.bulkCopy(nil)
	kmtest.Exec(t, e.SourceURL,
		`INSERT INTO items (id, name) SELECT g, 'new' || g FROM generate_series(101, 400) g`,
		`UPDATE items SET qty = id * 2 WHERE id % 2 = 0`,
		`DELETE FROM items WHERE id % 9 = 0`,
		`UPDATE items SET id = id + 1000 WHERE id % 11 = 0`)
	logRows := e.count(e.SourceURL, `SELECT count(*) FROM kwickmig.log`)

	// 1: cancel the context during the third batch.
	ctx, cancel := context.WithCancel(testCtx(t))
	calls := 0
	testHookBatch = func(context.Context, pgx.Tx) error {
		calls++
		if calls == 3 {
			cancel()
		}
		return nil
	}
	t.Cleanup(func() { testHookBatch = nil })
	_, err := FinalDelta(ctx, e.src(), e.tgt(), Options{BatchRows: 40})
	if err == nil {
		t.Fatal("cancelled run succeeded")
	}
	if got := e.count(e.TargetURL, `SELECT count(*) FROM kwickmig.rounds WHERE NOT done AND last_log_id > 0`); got != 1 {
		t.Fatalf("%d unfinished rounds with progress, want 1", got)
	}
	if got := e.appliedTotal(); got != 80 {
		t.Fatalf("applied %d before the crash, want 80 (two committed batches)", got)
	}

	// 2: kill the target connection inside the second batch of the resumed run.
	tgt := e.tgt()
	var pid uint32 = tgt.PgConn().PID()
	calls = 0
	testHookBatch = func(ctx context.Context, _ pgx.Tx) error {
		calls++
		if calls == 2 {
			killer := e.tgt()
			if _, err := killer.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
				return err
			}
		}
		return nil
	}
	if _, err := FinalDelta(testCtx(t), e.src(), tgt, Options{BatchRows: 40}); err == nil {
		t.Fatal("run with killed connection succeeded")
	}
	if got := e.appliedTotal(); got != 120 {
		t.Fatalf("applied %d after the second crash, want 120", got)
	}

	testHookBatch = nil
	res := e.finalDelta(Options{BatchRows: 40})
	if len(res.Rounds) != 2 || !res.Rounds[0].Resumed {
		t.Fatalf("rounds %+v, want the resumed round and a new one", res.Rounds)
	}
	e.assertSame()
	if got := e.appliedTotal(); got != logRows {
		t.Fatalf("applied %d changes in all, log has %d: something applied twice or lost", got, logRows)
	}
}
