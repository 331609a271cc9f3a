package verify

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
)

// maxKeylessDiff is the largest table without a key whose differing rows
// are counted (by grouping row hashes client-side); larger ones only report
// that counts or checksums differ.
const maxKeylessDiff = 200_000

// bisect narrows a mismatching range [lo, hi): it is split at its middle
// key (by the source's rows, or the target's if the source has too few)
// and only halves whose sums differ are followed, down to ranges of at
// most LeafRows rows, which are compared row by row.
func (t *tableCheck) bisect(ctx context.Context, w *dbWorker, lo, hi []string, sv, dv sum, o DBOptions) error {
	if max(sv.rows, dv.rows) <= o.LeafRows {
		return t.leaf(ctx, w, lo, hi, o)
	}
	conn, n := w.src, sv.rows
	if sv.rows < 2 {
		conn, n = w.dst, dv.rows
	}
	mid, err := t.nthKey(ctx, conn, lo, hi, n/2)
	if err != nil {
		return err
	}
	if mid == nil || (lo != nil && strings.Join(mid, "\x00") == strings.Join(lo, "\x00")) {
		return t.leaf(ctx, w, lo, hi, o)
	}
	for _, half := range [][2][]string{{lo, mid}, {mid, hi}} {
		s, d, err := t.bothSums(ctx, w, half[0], half[1])
		if err != nil {
			return err
		}
		if s != d {
			if err := t.bisect(ctx, w, half[0], half[1], s, d, o); err != nil {
				return err
			}
		}
	}
	return nil
}

// nthKey returns the key of the n-th row (0-based, key order) of [lo, hi).
func (t *tableCheck) nthKey(ctx context.Context, c *pgx.Conn, lo, hi []string, n int64) ([]string, error) {
	w, args := t.where(lo, hi)
	sql := "SELECT " + t.keyTexts() + " FROM " + t.pair.src.qname() + " WHERE " + w +
		" ORDER BY " + quotedList(t.key) + fmt.Sprintf(" OFFSET %d LIMIT 1", n)
	vals := make([]string, len(t.key))
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	err := c.QueryRow(ctx, sql, args...).Scan(ptrs...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: bisect: %s", t.res.Table, oneLine(err))
	}
	return vals, nil
}

func (t *tableCheck) keyTexts() string {
	texts := make([]string, len(t.key))
	for i, k := range t.key {
		texts[i] = quoteIdent(k.Name) + "::text"
	}
	return strings.Join(texts, ", ")
}

// rowHashes reads key → row hash for [lo, hi) on one side.
func (t *tableCheck) rowHashes(ctx context.Context, c *pgx.Conn, lo, hi []string) (map[string]int64, [][]string, error) {
	w, args := t.where(lo, hi)
	sql := "SELECT " + t.keyTexts() + ", " + t.rowHash() + " FROM " + t.pair.src.qname() + " WHERE " + w
	rows, err := c.Query(ctx, sql, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: rows: %s", t.res.Table, oneLine(err))
	}
	defer rows.Close()
	out := map[string]int64{}
	var keys [][]string
	for rows.Next() {
		vals := make([]string, len(t.key))
		ptrs := make([]any, len(vals)+1)
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		var h int64
		ptrs[len(vals)] = &h
		if err := rows.Scan(ptrs...); err != nil {
			return nil, nil, fmt.Errorf("%s: rows: %s", t.res.Table, oneLine(err))
		}
		out[strings.Join(vals, "\x00")] = h
		keys = append(keys, vals)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("%s: rows: %s", t.res.Table, oneLine(err))
	}
	return out, keys, nil
}

// leaf compares a small range row by row (by key, so the two sides' sort
// orders need not agree).
func (t *tableCheck) leaf(ctx context.Context, w *dbWorker, lo, hi []string, o DBOptions) error {
	var sm, dm map[string]int64
	var sk, dk [][]string
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { sm, sk, err = t.rowHashes(gctx, w.src, lo, hi); return })
	g.Go(func() (err error) { dm, dk, err = t.rowHashes(gctx, w.dst, lo, hi); return })
	if err := g.Wait(); err != nil {
		return err
	}
	for _, k := range sk {
		id := strings.Join(k, "\x00")
		dh, ok := dm[id]
		switch {
		case !ok:
			t.res.addRow(RowDiff{Kind: "missing", Key: t.showKey(k)})
		case dh != sm[id]:
			cols, err := t.changedColumns(ctx, w, k)
			if err != nil {
				return err
			}
			t.res.addRow(RowDiff{Kind: "changed", Key: t.showKey(k), Columns: cols})
		}
	}
	for _, k := range dk {
		if _, ok := sm[strings.Join(k, "\x00")]; !ok {
			t.res.addRow(RowDiff{Kind: "extra", Key: t.showKey(k)})
		}
	}
	return nil
}

// showKey renders a key as col=value, … (values as PostgreSQL prints them).
func (t *tableCheck) showKey(vals []string) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = t.key[i].Name + "=" + v
	}
	return strings.Join(parts, ", ")
}

// changedColumns names the columns whose text form differs for one row
// (NULL and ” differ). Values are not reported: they may be personal data.
func (t *tableCheck) changedColumns(ctx context.Context, w *dbWorker, key []string) ([]string, error) {
	texts := make([]string, len(t.pair.cols))
	for i, c := range t.pair.cols {
		texts[i] = quoteIdent(c.Name) + "::text"
	}
	wh, args := t.where(key, nil)
	wh = strings.Replace(wh, ">=", "=", 1)
	sql := "SELECT " + strings.Join(texts, ", ") + " FROM " + t.pair.src.qname() + " WHERE " + wh
	read := func(c *pgx.Conn) ([]*string, error) {
		vals := make([]*string, len(texts))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		return vals, c.QueryRow(ctx, sql, args...).Scan(ptrs...)
	}
	sv, err := read(w.src)
	if err != nil {
		return nil, fmt.Errorf("source: %s: %s", t.res.Table, oneLine(err))
	}
	dv, err := read(w.dst)
	if err != nil {
		return nil, fmt.Errorf("target: %s: %s", t.res.Table, oneLine(err))
	}
	var cols []string
	for i := range sv {
		if (sv[i] == nil) != (dv[i] == nil) || sv[i] != nil && *sv[i] != *dv[i] {
			cols = append(cols, t.pair.cols[i].Name)
		}
	}
	return cols, nil
}

// diffKeyless handles a table without a key whose sums differ: up to
// maxKeylessDiff rows it counts the rows only one side has (a changed row
// is one missing and one extra); beyond that the checksum difference
// stands alone.
func (t *tableCheck) diffKeyless(ctx context.Context, w *dbWorker, sv, dv sum) error {
	t.res.mu.Lock()
	t.res.ChecksumDiffer = true
	t.res.mu.Unlock()
	if max(sv.rows, dv.rows) > maxKeylessDiff {
		return nil
	}
	sql := "SELECT " + t.rowHash() + ", count(*) FROM " + t.pair.src.qname() + " GROUP BY 1"
	count := func(c *pgx.Conn, sign int64, m map[int64]int64) error {
		var h, n int64
		rows, _ := c.Query(ctx, sql)
		_, err := pgx.ForEachRow(rows, []any{&h, &n}, func() error { m[h] += sign * n; return nil })
		return err
	}
	m := map[int64]int64{}
	if err := count(w.src, 1, m); err != nil {
		return fmt.Errorf("source: %s: %s", t.res.Table, oneLine(err))
	}
	if err := count(w.dst, -1, m); err != nil {
		return fmt.Errorf("target: %s: %s", t.res.Table, oneLine(err))
	}
	t.res.mu.Lock()
	defer t.res.mu.Unlock()
	for _, n := range m {
		if n > 0 {
			t.res.Missing += n
		} else {
			t.res.Extra -= n
		}
	}
	return nil
}
