package verify

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/kwick/kwickmig/internal/pgutil"
)

// tableCheck is one table being compared.
type tableCheck struct {
	pair tablePair
	key  []column // nil: whole-table checksum
	res  *TableResult
	bnds [][]string // segment boundaries (key values as text), from the source
}

// sum is a range's row count and content checksum: the sum, as numeric,
// of a 64-bit hash of every row's text form (order-independent, and
// duplicates count, so it also serves tables without a key).
type sum struct {
	rows int64
	hash string
}

func quoteIdent(s string) string { return pgutil.QuoteIdent(s) }

// rowHash is the SQL of one row's hash over the compared columns.
func (t *tableCheck) rowHash() string {
	return "hashtextextended(ROW(" + quotedList(t.pair.cols) + ")::text, 0)"
}

// where returns the predicate for [lo, hi) over the key and its arguments.
// A bound may give fewer values than the key has columns: it then bounds
// that prefix of the key (segments are cut on the first key column). Key
// values travel as text and are cast on the server (exact for every type
// under the session settings both sides share).
func (t *tableCheck) where(lo, hi []string) (string, []any) {
	var conds []string
	var args []any
	bound := func(op string, vals []string) {
		ph := make([]string, len(vals))
		for i := range vals {
			args = append(args, vals[i])
			ph[i] = fmt.Sprintf("$%d::text::%s", len(args), t.key[i].Type)
		}
		conds = append(conds, "ROW("+quotedList(t.key[:len(vals)])+") "+op+" ROW("+strings.Join(ph, ", ")+")")
	}
	if lo != nil {
		bound(">=", lo)
	}
	if hi != nil {
		bound("<", hi)
	}
	if len(conds) == 0 {
		return "true", nil
	}
	return strings.Join(conds, " AND "), args
}

// sumOf computes a range's count and checksum on one side.
func (t *tableCheck) sumOf(ctx context.Context, c *pgx.Conn, lo, hi []string) (sum, error) {
	w, args := t.where(lo, hi)
	sql := "SELECT count(*), coalesce(sum(" + t.rowHash() + "), 0)::text FROM " + t.pair.src.qname() + " WHERE " + w
	var s sum
	err := c.QueryRow(ctx, sql, args...).Scan(&s.rows, &s.hash)
	return s, err
}

// bothSums computes a range's sums on the source and the target at once.
func (t *tableCheck) bothSums(ctx context.Context, w *dbWorker, lo, hi []string) (s, d sum, err error) {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		if s, err = t.sumOf(gctx, w.src, lo, hi); err != nil {
			err = fmt.Errorf("source: %s: %s", t.res.Table, oneLine(err))
		}
		return
	})
	g.Go(func() (err error) {
		if d, err = t.sumOf(gctx, w.dst, lo, hi); err != nil {
			err = fmt.Errorf("target: %s: %s", t.res.Table, oneLine(err))
		}
		return
	})
	err = g.Wait()
	return
}

// boundaries reads the first key column of every SegmentRows-th row of the
// source in key order (one ordered scan of the key index), without
// repeats: the segments are ranges of the first key column.
func (t *tableCheck) boundaries(ctx context.Context, c *pgx.Conn, every int64) error {
	first := quoteIdent(t.key[0].Name)
	sql := "SELECT " + first + "::text FROM (SELECT " + first + ", row_number() OVER (ORDER BY " + quotedList(t.key) +
		") AS kwickmig_rn FROM " + t.pair.src.qname() + ") s WHERE kwickmig_rn % $1 = 0 ORDER BY kwickmig_rn"
	rows, _ := c.Query(ctx, sql, every)
	var v string
	_, err := pgx.ForEachRow(rows, []any{&v}, func() error {
		if n := len(t.bnds); n == 0 || t.bnds[n-1][0] != v {
			t.bnds = append(t.bnds, []string{v})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("source: %s: segment boundaries: %s", t.res.Table, oneLine(err))
	}
	return nil
}

// bucketSums computes every segment's sum on one side in one scan of the
// table (grouped by width_bucket over the boundaries), which costs about
// what a COPY of the table does; segment i is [bnds[i-1], bnds[i]).
func (t *tableCheck) bucketSums(ctx context.Context, c *pgx.Conn) (map[int]sum, error) {
	out := map[int]sum{}
	if len(t.bnds) == 0 {
		s, err := t.sumOf(ctx, c, nil, nil)
		out[0] = s
		return out, err
	}
	vals := make([]string, len(t.bnds))
	for i, b := range t.bnds {
		vals[i] = b[0]
	}
	sql := "SELECT width_bucket(" + quoteIdent(t.key[0].Name) + ", $1::text[]::" + t.key[0].Type + "[]), count(*), coalesce(sum(" +
		t.rowHash() + "), 0)::text FROM " + t.pair.src.qname() + " GROUP BY 1"
	rows, _ := c.Query(ctx, sql, vals)
	var b int
	var s sum
	_, err := pgx.ForEachRow(rows, []any{&b, &s.rows, &s.hash}, func() error {
		out[b] = s
		return nil
	})
	return out, err
}

// dbWorker is one pair of connections, each in its side's snapshot.
type dbWorker struct {
	src, dst *pgx.Conn
}

// checkTables compares the rows of every table pair: boundaries first (all
// tables, in parallel), then every segment, Jobs at a time.
func checkTables(ctx context.Context, src, dst *side, pairs []tablePair, o DBOptions, res *DBResult) error {
	checks := make([]*tableCheck, len(pairs))
	for i, p := range pairs {
		tc := &tableCheck{pair: p, key: (&p).keyColumns()}
		tc.res = &TableResult{Table: p.src.id(), max: o.MaxListed}
		for _, c := range p.cols {
			tc.res.Columns = append(tc.res.Columns, c.Name)
		}
		if tc.key != nil {
			tc.res.Key, tc.res.KeyKind = p.src.Key, p.src.KeyKind
		}
		checks[i] = tc
		res.Tables = append(res.Tables, tc.res)
	}
	n := min(o.Jobs, max(len(checks), 1))
	workers, closeAll, err := openWorkers(ctx, n, src, dst)
	defer closeAll()
	if err != nil {
		return err
	}

	// Phase 1: boundaries.
	if err := runPool(ctx, workers, checks, func(ctx context.Context, w *dbWorker, t *tableCheck) error {
		if t.key == nil {
			return nil
		}
		return t.boundaries(ctx, w.src, o.SegmentRows)
	}); err != nil {
		return err
	}
	// Phase 2: every table's segment sums, one scan per side, tables in
	// parallel; mismatching segments are bisected on the same connections.
	var done atomic.Int64
	return runPool(ctx, workers, checks, func(ctx context.Context, w *dbWorker, t *tableCheck) error {
		err := t.check(ctx, w, o)
		if o.Progress != nil {
			o.Progress(int(done.Add(1)), len(checks))
		}
		return err
	})
}

// openWorkers opens n workers, each with a connection in the snapshot of
// src and of dst (a nil side gets none: the manifest halves read one
// database). closeAll closes whatever was opened, also after an error.
func openWorkers(ctx context.Context, n int, src, dst *side) (workers []*dbWorker, closeAll func(), err error) {
	workers = make([]*dbWorker, n)
	closeAll = func() {
		for _, w := range workers {
			if w != nil {
				w.close()
			}
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for i := range workers {
		g.Go(func() error {
			w := &dbWorker{}
			workers[i] = w
			var err error
			if src != nil {
				if w.src, err = src.worker(gctx); err != nil {
					return err
				}
			}
			if dst != nil {
				w.dst, err = dst.worker(gctx)
			}
			return err
		})
	}
	return workers, closeAll, g.Wait()
}

func (w *dbWorker) close() {
	for _, c := range []*pgx.Conn{w.src, w.dst} {
		if c != nil {
			c.Close(context.Background())
		}
	}
}

// runPool runs fn for every item, one worker (connection pair) per goroutine.
func runPool[T any](ctx context.Context, workers []*dbWorker, items []T, fn func(context.Context, *dbWorker, T) error) error {
	ch := make(chan T)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(ch)
		for _, it := range items {
			select {
			case ch <- it:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	for _, w := range workers {
		g.Go(func() error {
			for it := range ch {
				if err := fn(gctx, w, it); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// check compares a table: its segment sums on both sides, then bisects
// every segment whose sums differ (or, without a key, diffs the whole).
func (t *tableCheck) check(ctx context.Context, w *dbWorker, o DBOptions) error {
	if t.key == nil {
		sv, dv, err := t.bothSums(ctx, w, nil, nil)
		if err != nil {
			return err
		}
		t.tally(1, sv.rows, dv.rows, sv != dv)
		if sv != dv {
			return t.diffKeyless(ctx, w, sv, dv)
		}
		return nil
	}
	var sm, dm map[int]sum
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		if sm, err = t.bucketSums(gctx, w.src); err != nil {
			err = fmt.Errorf("source: %s: %s", t.res.Table, oneLine(err))
		}
		return
	})
	g.Go(func() (err error) {
		if dm, err = t.bucketSums(gctx, w.dst); err != nil {
			err = fmt.Errorf("target: %s: %s", t.res.Table, oneLine(err))
		}
		return
	})
	if err := g.Wait(); err != nil {
		return err
	}
	for i := 0; i <= len(t.bnds); i++ {
		sv, dv := sm[i], dm[i]
		t.tally(1, sv.rows, dv.rows, sv != dv)
		if sv == dv {
			continue
		}
		var lo, hi []string
		if i > 0 {
			lo = t.bnds[i-1]
		}
		if i < len(t.bnds) {
			hi = t.bnds[i]
		}
		if err := t.bisect(ctx, w, lo, hi, sv, dv, o); err != nil {
			return err
		}
	}
	return nil
}

func (t *tableCheck) tally(segments int, src, dst int64, differs bool) {
	t.res.mu.Lock()
	defer t.res.mu.Unlock()
	t.res.Segments += segments
	t.res.SourceRows += src
	t.res.TargetRows += dst
	if differs {
		t.res.SegmentsDiffer++
	}
}
