package main

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/cutover"
)

// liveState is the running command's latest progress, published in its
// checkpoint's live file (see checkpoint.PublishLive) so `kwickmig report`
// can show it while the command holds the checkpoint's lock.
type liveState struct {
	mu      sync.Mutex
	started time.Time
	total   int64 // what the previous run of the command counted (0: unknown)
	p       *checkpoint.LiveProgress
}

// publishLive registers the command's checkpoint for live publishing:
// when the command (or the library it calls) opens cpPath read-write, the
// live file appears, and it goes when the file is closed.
func (g *globalOptions) publishLive(command, cpPath string) {
	g.live.started = time.Now()
	checkpoint.PublishLive(cpPath, &checkpoint.LiveSource{
		Command: command, Started: g.live.started,
		Progress: g.live.snapshot,
		ReportInput: func(db *checkpoint.DB) (json.RawMessage, error) {
			in, err := cutover.ReadInput(db)
			if err != nil {
				return nil, err
			}
			g.live.setTotal(previousTotal(in, command))
			return json.Marshal(in)
		},
	})
}

// previousTotal is what the last finished run of command counted, the
// expected total of this one: files scanned by the last sync, files checked
// by the last verify.
func previousTotal(in *cutover.Input, command string) int64 {
	key := map[string]string{"files sync": "files_scanned", "verify files": "files_checked"}[command]
	for i := len(in.Runs) - 1; i >= 0 && key != ""; i-- {
		r := in.Runs[i]
		if r.Command == command && r.ExitCode == 0 {
			if v, ok := r.Summary[key].(float64); ok {
				return int64(v)
			}
		}
	}
	return 0
}

func (l *liveState) setTotal(n int64) {
	l.mu.Lock()
	l.total = n
	l.mu.Unlock()
}

// progress records the command's latest figures: done of the expected
// total (when a previous run tells it), bytes moved, and a short line. The
// ETA assumes the rate so far holds.
func (l *liveState) progress(done, bytes int64, line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := &checkpoint.LiveProgress{Done: done, Bytes: bytes, Line: line}
	if l.total > 0 {
		p.Total = max(l.total, done)
		if secs := time.Since(l.started).Seconds(); done > 0 && secs > 0 {
			p.ETASeconds = float64(p.Total-done) / (float64(done) / secs)
		}
	}
	l.p = p
}

// progressOf records progress whose total the command knows (tables of
// verify db).
func (l *liveState) progressOf(done, total int64, line string) {
	l.setTotal(total)
	l.progress(done, 0, line)
}

func (l *liveState) snapshot() *checkpoint.LiveProgress {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.p == nil {
		return nil
	}
	c := *l.p
	return &c
}
