package sync

import (
	"context"
	gosync "sync"
	"time"
)

// Adaptive concurrency: how many uploads are in flight.
//
// Small files are latency-bound: with L uploads in flight and a round trip
// of R, a run moves at most L/R files per second, so the right L grows with
// the distance to the endpoint (64 is plenty on a LAN, 256 wins at 30 ms).
// Rather than making the user find it, the limit is found while the run goes,
// between a floor and the cap (--concurrency):
//
//   - Slow start: from startLimit the limit doubles every window while the
//     throughput (completed uploads per second) grows by at least 25% per
//     doubling. A doubling that buys less ends slow start; one that bought
//     less than 5% is undone.
//   - Then probe: every other window the limit tries 1/8 more and keeps it
//     only if the throughput rose by 5%; otherwise it goes back.
//   - Rising latency: outside a probe, a window whose mean latency is over
//     twice the lowest seen (queueing at the endpoint, or in the pacer, or
//     for memory from the budget) gives back 1/8. By Little's law
//     L = throughput × latency, so at twice the unloaded latency at least half
//     the uploads in flight are waiting in some queue, not adding throughput.
//   - Throttling (503 SlowDown, 429: the pacer counts them) halves the limit
//     at once, at most once per window: one burst from many uploads in
//     flight is one signal.
//
// A window is the next max(limit, 16) completions after the uploads that
// were in flight when the limit last changed have completed (they ran under
// the old limit), and it counts only if uploads waited for a slot in most
// of it: when the walker (or the source) cannot supply work fast enough, a
// higher limit would change nothing and the window is ignored.
//
// The controller below is the decision alone, fed window summaries, so that
// tests can drive it deterministically; the limiter measures the windows.

// DefaultConcurrency is the default cap (--concurrency): high enough for
// about 60 ms of round trip with small files (bench/latency.sh).
const DefaultConcurrency = 512

const (
	startLimit   = 64 // where a run starts (or the cap, if lower)
	floorLimit   = 4  // never below this (or the cap)
	minWindow    = 16 // completions per window, at least
	ssGrowth     = 1.25
	probeGain    = 1.05
	latencyLimit = 2.0
)

// window summarises the completions the controller decides on.
type window struct {
	done      int           // uploads completed
	elapsed   time.Duration // from the window's start to the last of them
	latency   time.Duration // their mean time holding a slot
	saturated bool          // uploads waited for a slot through most of the window
}

// controller decides the limit (see the top of this file).
type controller struct {
	floor, cap int
	limit      int
	high       int // highest limit reached
	backoffs   int // throttle halvings

	slowStart bool
	prevLimit int     // slow start: the limit before the last doubling ...
	prevTput  float64 // ... and the throughput it gave (0: none yet)

	probeFrom int     // probing: the limit before the probe (0: not probing) ...
	probeTput float64 // ... and the throughput it gave

	minLat time.Duration // lowest window mean latency, drifting up 1% a window
}

func newController(start, cap int) *controller {
	start = min(max(start, 1), cap)
	return &controller{floor: min(floorLimit, cap), cap: cap, limit: start, high: start, slowStart: start < cap}
}

// throttled halves the limit.
func (c *controller) throttled() int {
	c.limit = max(c.floor, c.limit/2)
	c.backoffs++
	c.slowStart, c.prevTput, c.probeFrom = false, 0, 0
	return c.limit
}

// observe decides on one window and returns the new limit.
func (c *controller) observe(w window) int {
	if !w.saturated || w.done == 0 || w.elapsed <= 0 {
		return c.limit // supply-bound: nothing learned about the limit
	}
	tput := float64(w.done) / w.elapsed.Seconds()
	if c.minLat == 0 || w.latency < c.minLat {
		c.minLat = w.latency
	} else {
		c.minLat += c.minLat / 100 // a lasting change of the round trip is adopted in time
	}
	defer func() { c.high = max(c.high, c.limit) }()

	if c.slowStart {
		if c.prevTput > 0 && tput < c.prevTput*ssGrowth {
			c.slowStart = false
			if tput < c.prevTput*probeGain {
				c.limit = c.prevLimit
			}
			return c.limit
		}
		c.prevLimit, c.prevTput = c.limit, tput
		c.limit = min(c.limit*2, c.cap)
		c.slowStart = c.limit < c.cap
		return c.limit
	}

	if c.probeFrom != 0 {
		if tput < c.probeTput*probeGain {
			c.limit = c.probeFrom
		}
		c.probeFrom = 0
		return c.limit
	}
	if float64(w.latency) > latencyLimit*float64(c.minLat) {
		c.limit = max(c.floor, c.limit-max(c.limit/8, 1))
		return c.limit
	}
	if c.limit < c.cap {
		c.probeFrom, c.probeTput = c.limit, tput
		c.limit = min(c.cap, c.limit+max(c.limit/8, 1))
	}
	return c.limit
}

// limiter holds uploads to the controller's limit and measures its windows.
type limiter struct {
	mu     gosync.Mutex
	cond   *gosync.Cond
	ctl    *controller
	fixed  bool
	now    func() time.Time
	notify func(limit int, why string) // may be nil

	inflight, waiting int
	throttles         func() int64 // the pacer's throttle count (nil: none)
	seenThrottles     int64

	skip      int       // completions still to come from before the last change
	start     time.Time // the window's start: the end of the previous one or of the skip
	done      int
	busy      int // completions that found uploads waiting for a slot
	latSum    time.Duration
	throttled bool // a cut happened in this window already
}

// newLimiter returns a limiter between a floor and cap; fixed keeps it at
// cap. Run wakes its waiters when the run ends (wake).
func newLimiter(cap int, fixed bool, throttles func() int64, notify func(int, string)) *limiter {
	start := startLimit
	if fixed {
		start = cap
	}
	l := &limiter{ctl: newController(start, cap), fixed: fixed, now: time.Now, notify: notify, throttles: throttles}
	l.cond = gosync.NewCond(&l.mu)
	return l
}

// wake makes waiting acquires look at their context again.
func (l *limiter) wake() {
	l.mu.Lock()
	l.cond.Broadcast()
	l.mu.Unlock()
}

// acquire waits for a slot; it fails only when ctx ends.
func (l *limiter) acquire(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.inflight >= l.ctl.limit {
		if err := ctx.Err(); err != nil {
			return err
		}
		l.waiting++
		l.cond.Wait()
		l.waiting--
	}
	if l.start.IsZero() {
		l.start = l.now() // the first window starts with the first upload
		if l.throttles != nil {
			l.seenThrottles = l.throttles() // throttles before the run are not this run's
		}
	}
	l.inflight++
	return nil
}

// release gives back a slot taken at start and feeds the controller.
func (l *limiter) release(start time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight--
	l.cond.Signal()
	if l.fixed {
		return
	}
	now := l.now()
	if l.throttles != nil {
		if n := l.throttles(); n > l.seenThrottles {
			l.seenThrottles = n
			if !l.throttled {
				l.throttled = true
				l.set(l.ctl.throttled(), "throttled")
				return
			}
		}
	}
	if l.skip > 0 {
		l.skip--
		l.start = now // the window starts when the last upload of the old limit is done
		return
	}
	l.done++
	l.latSum += now.Sub(start)
	if l.waiting > 0 {
		l.busy++
	}
	if l.done < max(l.ctl.limit, minWindow) {
		return
	}
	w := window{done: l.done, elapsed: now.Sub(l.start), latency: l.latSum / time.Duration(l.done), saturated: 2*l.busy > l.done}
	old := l.ctl.limit
	l.done, l.busy, l.latSum, l.throttled, l.start = 0, 0, 0, false, now
	if n := l.ctl.observe(w); n != old {
		l.set(n, "window")
	}
}

// set starts a new window after a change of the limit to n.
func (l *limiter) set(n int, why string) {
	l.skip = l.inflight
	l.done, l.busy, l.latSum, l.start = 0, 0, 0, l.now()
	l.cond.Broadcast()
	if l.notify != nil {
		l.notify(n, why)
	}
}

// stats returns the current and highest limits and the halvings.
func (l *limiter) stats() (cur, high, backoffs int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ctl.limit, l.ctl.high, l.ctl.backoffs
}

// inFlight returns the uploads in flight and the current limit.
func (l *limiter) inFlight() (n, limit int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inflight, l.ctl.limit
}

// InFlight returns the uploads in flight and the current limit on them
// (for progress lines and gauges).
func (s *Syncer) InFlight() (n, limit int) {
	return s.lim.inFlight()
}
