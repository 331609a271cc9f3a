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

// segment is a key range [lo, hi) of a table; nil bounds are open.
type segment struct {
	t      *tableCheck
	lo, hi []string
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
// Key values travel as text and are cast on the server (exact for every
// type under the session settings both sides share).
func (t *tableCheck) where(lo, hi []string) (string, []any) {
	var conds []string
	var args []any
	bound := func(op string, vals []string) {
		ph := make([]string, len(t.key))
		for i, c := range t.key {
			args = append(args, vals[i])
			ph[i] = fmt.Sprintf("$%d::text::%s", len(args), c.Type)
		}
		conds = append(conds, "ROW("+quotedList(t.key)+") "+op+" ROW("+strings.Join(ph, ", ")+")")
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

// boundaries reads every SegmentRows-th key of the source in key order: one
// ordered scan of the key index.
func (t *tableCheck) boundaries(ctx context.Context, c *pgx.Conn, every int64) error {
	keys := quotedList(t.key)
	texts := make([]string, len(t.key))
	for i, k := range t.key {
		texts[i] = quoteIdent(k.Name) + "::text"
	}
	sql := "SELECT " + strings.Join(texts, ", ") + " FROM (SELECT " + keys + ", row_number() OVER (ORDER BY " + keys +
		") AS kwickmig_rn FROM " + t.pair.src.qname() + ") s WHERE kwickmig_rn % $1 = 0 ORDER BY kwickmig_rn"
	rows, err := c.Query(ctx, sql, every)
	if err != nil {
		return fmt.Errorf("source: %s: segment boundaries: %s", t.res.Table, oneLine(err))
	}
	defer rows.Close()
	for rows.Next() {
		vals := make([]string, len(t.key))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("source: %s: segment boundaries: %s", t.res.Table, oneLine(err))
		}
		t.bnds = append(t.bnds, vals)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("source: %s: segment boundaries: %s", t.res.Table, oneLine(err))
	}
	return nil
}

// segments splits the table at its boundaries: (-inf, b1), [b1, b2), …,
// [bn, +inf), so every row of either side falls in exactly one.
func (t *tableCheck) segments() []segment {
	segs := make([]segment, 0, len(t.bnds)+1)
	var lo []string
	for _, b := range t.bnds {
		segs = append(segs, segment{t: t, lo: lo, hi: b})
		lo = b
	}
	return append(segs, segment{t: t, lo: lo})
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
	workers := make([]*dbWorker, n)
	defer func() {
		for _, w := range workers {
			if w != nil {
				w.close()
			}
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	for i := range workers {
		g.Go(func() error {
			w := &dbWorker{}
			workers[i] = w
			var err error
			if w.src, err = src.worker(gctx); err != nil {
				return err
			}
			w.dst, err = dst.worker(gctx)
			return err
		})
	}
	if err := g.Wait(); err != nil {
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
	// Phase 2: segments.
	var segs []segment
	for _, t := range checks {
		if t.key == nil {
			segs = append(segs, segment{t: t})
			continue
		}
		segs = append(segs, t.segments()...)
	}
	var done atomic.Int64
	return runPool(ctx, workers, segs, func(ctx context.Context, w *dbWorker, s segment) error {
		err := s.t.check(ctx, w, s, o)
		if o.Progress != nil {
			o.Progress(int(done.Add(1)), len(segs))
		}
		return err
	})
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

// check compares one segment; a mismatch is bisected down to rows.
func (t *tableCheck) check(ctx context.Context, w *dbWorker, s segment, o DBOptions) error {
	sv, dv, err := t.bothSums(ctx, w, s.lo, s.hi)
	if err != nil {
		return err
	}
	t.res.mu.Lock()
	t.res.Segments++
	t.res.SourceRows += sv.rows
	t.res.TargetRows += dv.rows
	differs := sv != dv
	if differs {
		t.res.SegmentsDiffer++
	}
	t.res.mu.Unlock()
	if !differs {
		return nil
	}
	if t.key == nil {
		return t.diffKeyless(ctx, w, sv, dv)
	}
	return t.bisect(ctx, w, s.lo, s.hi, sv, dv, o)
}
