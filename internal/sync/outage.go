package sync

import (
	"context"
	"errors"
	"fmt"
	gosync "sync"
	"time"

	"github.com/kwick/kwickmig/internal/objstore"
)

// ErrOutage is matched by the error of a run stopped because the endpoint
// stayed unreachable for longer than the outage timeout.
var ErrOutage = errors.New("endpoint unreachable")

// outageGate turns "every request fails with a connection-level error" into
// a pause instead of hours of per-file failures: the first unreachable error
// closes the gate (no worker starts new work), one prober asks the endpoint
// with backoff, and the gate opens again when it answers. The work that
// failed is retried, never counted as failed. If the endpoint stays silent
// past the timeout, the gate fails for good: the run stops with ErrOutage
// and the files never attempted are not failures either — the checkpoint
// holds everything confirmed, and the next run resumes.
type outageGate struct {
	probe   func(context.Context) error
	timeout time.Duration
	stop    func(error) // ends the run
	notify  func(since time.Time, down bool)

	mu    gosync.Mutex
	open  chan struct{} // closed while the endpoint answers
	since time.Time     // start of the first failed request of this outage
	err   error         // set once the outage timed out
	count int           // outages so far
	// reopened is when the last outage ended (its probe was answered) and
	// lastOK when a request last succeeded. A probe that is answered while
	// the requests themselves still get no answer (a load balancer that
	// answers HEAD but drops bodies, an MTU black hole) must not restart
	// the outage clock: until a request succeeds, it is the same outage.
	reopened, lastOK time.Time
	probeOK          bool // the current outage's probe was answered at least once
}

// ok records a request that succeeded.
func (g *outageGate) ok() {
	now := time.Now()
	g.mu.Lock()
	g.lastOK = now
	g.mu.Unlock()
}

func newOutageGate(probe func(context.Context) error, timeout time.Duration, stop func(error), notify func(time.Time, bool)) *outageGate {
	g := &outageGate{probe: probe, timeout: timeout, stop: stop, notify: notify, open: make(chan struct{})}
	close(g.open)
	return g
}

// wait blocks while the endpoint is considered down. It returns an error
// when the run should give up (outage timeout or ctx done).
func (g *outageGate) wait(ctx context.Context) error {
	g.mu.Lock()
	ch, err := g.open, g.err
	g.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case <-ch:
	case <-ctx.Done():
		return ctx.Err()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// down reports an unreachable error from a request started at start. The
// first report of an outage starts the prober.
func (g *outageGate) down(ctx context.Context, start time.Time, cause error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return
	}
	select {
	case <-g.open:
	default:
		// Already down. A request that started earlier than the recorded
		// start of the outage moves it back: the timeout counts from the
		// first request that got no answer.
		if start.Before(g.since) {
			g.since = start
		}
		return
	}
	if start.Before(g.reopened) {
		// A request sent during the last outage, failing only now: old
		// news. Its job is simply tried again.
		return
	}
	g.open = make(chan struct{})
	if !g.reopened.IsZero() && g.lastOK.Before(g.reopened) {
		// Nothing succeeded since the last outage "ended": it did not.
		start = g.since
	} else {
		g.count++
		g.probeOK = false
	}
	g.since = start
	if g.notify != nil {
		g.notify(start, true)
	}
	go g.prober(ctx, g.open, cause)
}

func (g *outageGate) prober(ctx context.Context, open chan struct{}, cause error) {
	backoff := 500 * time.Millisecond
	for {
		g.mu.Lock()
		deadline := g.since.Add(g.timeout)
		since := g.since
		g.mu.Unlock()
		wait := min(backoff, time.Until(deadline))
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				g.finish(open, ctx.Err())
				return
			case <-t.C:
			}
		}
		if time.Now().Before(deadline) {
			pctx, cancel := context.WithDeadline(ctx, deadline)
			err := g.probe(pctx)
			cancel()
			// Any answer from the endpoint, even an error status, means it is
			// reachable again: the requests themselves will report the rest.
			answered := err == nil || !errors.Is(err, objstore.ErrUnreachable) &&
				!errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)
			if answered && ctx.Err() == nil {
				if g.notify != nil {
					g.notify(since, false)
				}
				g.mu.Lock()
				g.reopened = time.Now()
				g.probeOK = true
				g.mu.Unlock()
				g.finish(open, nil)
				return
			}
			if err != nil {
				cause = err
			}
			backoff = min(backoff*2, 30*time.Second)
			continue
		}
		g.mu.Lock()
		half := g.probeOK
		g.mu.Unlock()
		what := ""
		if half {
			what = " (it answers HeadBucket, but no upload got an answer: a proxy, load balancer or MTU problem on the way?)"
		}
		err := fmt.Errorf("%w since %s (%s)%s: %v; checkpoint saved; run again to resume",
			ErrOutage, since.Format(time.RFC3339), time.Since(since).Round(time.Second), what, rootCause(cause))
		g.finish(open, err)
		g.stop(err)
		return
	}
}

func (g *outageGate) finish(open chan struct{}, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil && g.err == nil && !errors.Is(err, context.Canceled) {
		g.err = err
	}
	close(open)
}

func (g *outageGate) outages() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.count
}

// state returns when the current outage started (zero while up).
func (g *outageGate) state() time.Time {
	if g == nil {
		return time.Time{}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
		return time.Time{}
	default:
		return g.since
	}
}

// rootCause strips the wrapping a long error collects, keeping the last
// two parts ("dial tcp …: connection refused").
func rootCause(err error) string {
	if err == nil {
		return "no answer"
	}
	return err.Error()
}
