package sync

import (
	"fmt"
	"time"

	"github.com/kwick/kwickmig/internal/checkpoint"
)

// recorder is the single checkpoint writer. It commits confirmed uploads in
// batches (BatchSize records or FlushInterval, whichever comes first): one
// fsync per batch, never one per file. On close it flushes what is left.
func (s *Syncer) recorder(in <-chan done) error {
	var batch []checkpoint.FileOp
	var firstErr error
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if firstErr == nil && s.cp != nil && !s.opts.DryRun {
			if err := s.cp.ApplyFileOps(batch); err != nil {
				// A checkpoint that cannot be written (disk full, I/O
				// error) stops the run at once: uploads that cannot be
				// recorded would only be repeated by the next run, and a
				// summary saying "failed 0" would be a lie. bbolt rolls the
				// failed transaction back, so the file keeps every batch
				// committed before.
				firstErr = err
				s.stop(fmt.Errorf("checkpoint %s: cannot record uploads: %w; stopped (nothing uploaded is lost: the checkpoint keeps every batch saved before; free space and run again)", s.cp.Path(), err))
			}
		}
		batch = batch[:0]
	}
	t := time.NewTicker(s.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case d, ok := <-in:
			if !ok {
				flush()
				return firstErr
			}
			batch = append(batch, d.op)
			if len(batch) >= s.opts.BatchSize {
				flush()
			}
		case <-t.C:
			flush()
		}
	}
}
