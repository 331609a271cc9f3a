package pgdelta

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// blocker is a session that held a lock the apply waited for.
type blocker struct {
	PID     int32
	User    string
	App     string
	State   string
	XactAge time.Duration // since its transaction began (0: none)
	Since   time.Duration // in its current state
	Query   string
}

func (b blocker) String() string {
	s := fmt.Sprintf("pid %d (user %q, application %q, %s for %s", b.PID, b.User, b.App, b.State, b.Since.Round(time.Second))
	if b.XactAge > 0 {
		s += fmt.Sprintf(", transaction open for %s", b.XactAge.Round(time.Second))
	}
	if q := strings.Join(strings.Fields(b.Query), " "); q != "" {
		if len(q) > 80 {
			q = q[:80] + "…"
		}
		s += fmt.Sprintf(", last query %q", q)
	}
	return s + ")"
}

const blockersSQL = `
SELECT a.pid, coalesce(a.usename, ''), coalesce(a.application_name, ''), coalesce(a.state, 'unknown'),
       coalesce(extract(epoch FROM now() - a.xact_start), 0)::float8,
       coalesce(extract(epoch FROM now() - a.state_change), 0)::float8, coalesce(a.query, '')
FROM pg_stat_activity a WHERE a.pid = ANY (pg_blocking_pids($1)) ORDER BY a.pid`

func scanBlockers(ctx context.Context, conn *pgx.Conn, pid uint32) ([]blocker, error) {
	rows, err := conn.Query(ctx, blockersSQL, int32(pid))
	if err != nil {
		return nil, err
	}
	return collectBlockers(rows)
}

func collectBlockers(rows pgx.Rows) ([]blocker, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (blocker, error) {
		var b blocker
		var xact, since float64
		err := r.Scan(&b.PID, &b.User, &b.App, &b.State, &xact, &since, &b.Query)
		b.XactAge, b.Since = time.Duration(xact*float64(time.Second)), time.Duration(since*float64(time.Second))
		return b, err
	})
}

// lockWatch names the sessions an apply transaction waits for. The waiting
// connection cannot ask (it is busy waiting), and after lock_timeout fires
// it no longer waits, so a second connection samples pg_blocking_pids while
// a batch runs longer than a moment.
type lockWatch struct {
	target  *pgx.Conn
	timeout time.Duration

	mu    sync.Mutex
	watch *pgx.Conn // opened on first need, reused
}

func newLockWatch(target *pgx.Conn, timeout time.Duration) *lockWatch {
	return &lockWatch{target: target, timeout: timeout}
}

func (w *lockWatch) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.watch != nil {
		w.watch.Close(context.Background())
		w.watch = nil
	}
}

// run runs fn (one apply transaction). If it fails on the lock timeout, the
// error names the sessions that held the lock.
func (w *lockWatch) run(ctx context.Context, fn func() error) error {
	pid := w.target.PgConn().PID()
	wctx, cancel := context.WithCancel(ctx)
	var seen []blocker
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Sample from a quarter of the timeout on (at most after 2 s), then
		// every quarter second; keep the last answer.
		first := min(w.timeout/4, 2*time.Second)
		t := time.NewTimer(first)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
			}
			if bs := w.sample(wctx, pid); len(bs) > 0 {
				seen = bs
			}
			t.Reset(250 * time.Millisecond)
		}
	}()
	err := fn()
	cancel()
	<-done
	if !lockTimedOut(err) {
		return err
	}
	if len(seen) == 0 {
		return fmt.Errorf("%w (waited %s for a lock on the target (--lock-timeout); the session holding it had gone by the time it was asked)", err, w.timeout)
	}
	names := make([]string, len(seen))
	for i, b := range seen {
		names[i] = b.String()
	}
	return fmt.Errorf("%w: waited %s (--lock-timeout) for a lock held by %s; end that session (SELECT pg_terminate_backend(%d)) or wait for it, then run again",
		err, w.timeout, strings.Join(names, "; "), seen[0].PID)
}

func (w *lockWatch) sample(ctx context.Context, pid uint32) []blocker {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.watch != nil && w.watch.IsClosed() {
		w.watch = nil
	}
	if w.watch == nil {
		cfg := w.target.Config().Copy()
		cfg.RuntimeParams["application_name"] = "kwickmig lock watch"
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return nil
		}
		w.watch = c
	}
	bs, err := scanBlockers(ctx, w.watch, pid)
	if err != nil {
		if ctx.Err() == nil {
			w.watch.Close(context.Background())
			w.watch = nil
		}
		return nil
	}
	return bs
}

func lockTimedOut(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "55P03"
}
