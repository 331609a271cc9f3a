package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/pgdelta"
	"github.com/kwick/kwickmig/internal/report"
)

// deltaProgress is final-delta's progress line: changes applied (or
// exported) of the backlog the round starts with, with an ETA, fed batch by
// batch through pgdelta.Options.OnBatch next to the metrics hook.
type deltaProgress struct {
	spin  *report.Spinner
	g     *globalOptions
	total int64
	done  atomic.Int64
	next  func(rows int) // --metrics-addr's hook, or nil
}

// newDeltaProgress measures the backlog on src for the total. The
// measurement is bounded (2 s): the round itself must not wait on a slow
// count; without it the line counts without a total. The backlog can grow
// while the round runs (the application may still write during the day's
// rounds), so done may pass the total: the line then just counts.
func newDeltaProgress(ctx context.Context, g *globalOptions, src *pgx.Conn, next func(rows int)) *deltaProgress {
	p := &deltaProgress{spin: g.spinner("db final-delta", 4), g: g, next: next}
	if !g.Quiet {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if b, ok, err := pgdelta.CaptureBacklog(cctx, src); err == nil && ok {
			p.total = b.Rows
			p.spin.SetTotal(b.Rows)
		}
		cancel()
	}
	return p
}

// onBatch is the pgdelta.Options.OnBatch hook.
func (p *deltaProgress) onBatch(rows int) {
	if p.next != nil {
		p.next(rows)
	}
	done := p.done.Add(int64(rows))
	line := fmt.Sprintf("changes %s", p.spin.Count(done))
	p.spin.Update(done, line, "changes", done)
	p.g.live.progressOf(done, p.total, line)
}

func (p *deltaProgress) finish() { p.spin.Done() }
