package sync

import (
	"testing"
	"time"
)

// endpoint models a store for the controller: each upload takes rtt plus
// its share of a server that completes at most capacity uploads a second.
type endpoint struct {
	rtt      time.Duration
	capacity float64 // uploads/s
}

// window is what the limiter would measure over one window at limit l.
func (e endpoint) window(l int) window {
	tput := min(float64(l)/e.rtt.Seconds(), e.capacity)
	lat := time.Duration(float64(l) / tput * float64(time.Second))
	done := max(l, minWindow)
	return window{done: done, elapsed: time.Duration(float64(done) / tput * float64(time.Second)), latency: lat, saturated: true}
}

func drive(c *controller, e endpoint, n int) (seen []int) {
	for range n {
		seen = append(seen, c.observe(e.window(c.limit)))
	}
	return seen
}

// TestControllerGrowsWhenLatencyBound: 30 ms round trip, a server good for
// 10,000 uploads/s: the pipe needs 300 in flight. From 64 the limit must
// reach that region and stay within twice of it, never over the cap.
func TestControllerGrowsWhenLatencyBound(t *testing.T) {
	e := endpoint{rtt: 30 * time.Millisecond, capacity: 10000}
	c := newController(startLimit, 1024)
	seen := drive(c, e, 200)
	if c.high < 256 {
		t.Fatalf("limit reached only %d (seen %v): want ≥ 256 for a 300-upload pipe", c.high, seen[:10])
	}
	if c.limit < 256 || c.limit > 600 {
		t.Fatalf("limit settled at %d (seen %v), want 256..600", c.limit, seen[len(seen)-20:])
	}
	// The first windows are slow start: doubling.
	if seen[0] != 128 || seen[1] != 256 {
		t.Fatalf("slow start went %v, want 128, 256, ...", seen[:4])
	}
	t.Logf("limits: first %v, last %v, high %d", seen[:6], seen[len(seen)-6:], c.high)
}

// TestControllerStopsAtCap: the same pipe with a cap of 128.
func TestControllerStopsAtCap(t *testing.T) {
	e := endpoint{rtt: 30 * time.Millisecond, capacity: 10000}
	c := newController(startLimit, 128)
	for i, l := range drive(c, e, 100) {
		if l > 128 {
			t.Fatalf("window %d: limit %d over the cap 128", i, l)
		}
	}
	if c.limit != 128 || c.high != 128 {
		t.Fatalf("limit %d high %d, want 128 (the cap) for a pipe of 300", c.limit, c.high)
	}
}

// TestControllerLocalStaysLow: no round trip to speak of, a server good
// for 5,000 uploads/s: doubling 64 buys nothing, so the limit goes back
// and never climbs far (latency only rises).
func TestControllerLocalStaysLow(t *testing.T) {
	e := endpoint{rtt: time.Millisecond, capacity: 5000}
	c := newController(startLimit, 1024)
	seen := drive(c, e, 200)
	if c.high > 128 || c.limit > 80 {
		t.Fatalf("limit %d, high %d (first %v): want it back near 64, at most one doubling tried", c.limit, c.high, seen[:6])
	}
}

// TestControllerThrottleHalves: a throttle halves the limit at once, down
// to the floor, and ends slow start (the next window does not double).
func TestControllerThrottleHalves(t *testing.T) {
	e := endpoint{rtt: 30 * time.Millisecond, capacity: 10000}
	c := newController(startLimit, 1024)
	drive(c, e, 3)
	before := c.limit
	if got := c.throttled(); got != before/2 || c.backoffs != 1 {
		t.Fatalf("throttled at %d: limit %d backoffs %d, want %d 1", before, got, c.backoffs, before/2)
	}
	if next := c.observe(e.window(c.limit)); next > before/2+before/16 {
		t.Fatalf("after a throttle the limit went from %d to %d: slow start must end (at most a 1/8 probe)", before/2, next)
	}
	for range 20 {
		c.throttled()
	}
	if c.limit != floorLimit {
		t.Fatalf("after 21 throttles the limit is %d, want the floor %d", c.limit, floorLimit)
	}
}

// TestControllerRisingLatencyBacksOff: the round trip grows fivefold
// (the server got busy) while throughput stays flat: the limit comes down.
func TestControllerRisingLatencyBacksOff(t *testing.T) {
	c := newController(startLimit, 1024)
	drive(c, endpoint{rtt: 30 * time.Millisecond, capacity: 10000}, 50)
	before := c.limit
	// Same throughput, five times the latency: queueing somewhere.
	for range 30 {
		w := endpoint{rtt: 30 * time.Millisecond, capacity: 10000}.window(c.limit)
		w.latency *= 5
		c.observe(w)
	}
	if c.limit > before/2 {
		t.Fatalf("limit %d after 30 windows at 5× the latency (was %d): want it well down", c.limit, before)
	}
}

// TestControllerIgnoresSupplyBound: windows in which no upload waited for
// a slot (the walker is the bottleneck) leave the limit alone.
func TestControllerIgnoresSupplyBound(t *testing.T) {
	c := newController(startLimit, 1024)
	for range 10 {
		w := endpoint{rtt: 30 * time.Millisecond, capacity: 10000}.window(c.limit)
		w.saturated = false
		c.observe(w)
	}
	if c.limit != startLimit {
		t.Fatalf("limit %d after supply-bound windows, want %d", c.limit, startLimit)
	}
}

// TestControllerFixedStart: a start above the cap is the cap.
func TestControllerFixedStart(t *testing.T) {
	if c := newController(startLimit, 16); c.limit != 16 || c.slowStart {
		t.Fatalf("cap 16: start %d slow start %v, want 16 false", c.limit, c.slowStart)
	}
}
