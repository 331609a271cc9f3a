package objstore

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Pacer limits the rate at which requests start. It is adaptive: every
// throttling response (503 SlowDown, 429) cuts the allowed rate, and the rate
// climbs back slowly while requests succeed, so a throttling bucket slows the
// run down instead of failing files. A fixed ceiling (--max-rps) caps it.
//
// The zero rate means "unlimited until the first throttle".
type Pacer struct {
	mu       sync.Mutex
	max      float64   // user cap, 0 = none
	rate     float64   // current allowed requests/s, 0 = unlimited
	next     time.Time // earliest start of the next request
	lastCut  time.Time
	observed rateMeter

	throttles atomic.Int64
	inFlight  atomic.Int64 // attempts sent and not yet answered (inflight.go)
}

// NewPacer returns a pacer capped at maxRPS requests per second (0: no cap).
func NewPacer(maxRPS float64) *Pacer {
	return &Pacer{max: maxRPS, rate: maxRPS}
}

// Wait blocks until the next request may start.
func (p *Pacer) Wait(ctx context.Context) error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	p.observed.tick()
	if p.rate <= 0 {
		p.mu.Unlock()
		return nil
	}
	now := time.Now()
	start := p.next
	if start.Before(now) {
		start = now
	}
	p.next = start.Add(time.Duration(float64(time.Second) / p.rate))
	p.mu.Unlock()
	if d := time.Until(start); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Throttled records a throttling response: the rate is cut to 70% of what
// was being achieved, at most once per second (one burst of 503s from 64
// requests in flight is one signal, not sixty-four).
func (p *Pacer) Throttled() {
	if p == nil {
		return
	}
	p.throttles.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.lastCut) < time.Second {
		return
	}
	p.lastCut = now
	cur := p.rate
	if cur <= 0 {
		cur = p.observed.rate()
		if cur <= 0 {
			cur = 100
		}
	}
	p.rate = max(cur*0.7, 1)
}

// Succeeded records a successful request: a second after the last cut the
// rate grows by 1% per success, and by at least one request/s per success
// (so it recovers within seconds when the throttling stops: at a low rate,
// 1% per success would take minutes to climb back from a few requests/s),
// and the limit is lifted entirely once it passes the cap (or, without a
// cap, once it is well above what is being achieved).
func (p *Pacer) Succeeded() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rate <= 0 || time.Since(p.lastCut) < time.Second {
		return
	}
	p.rate = max(p.rate*1.01, p.rate+1)
	if p.max > 0 && p.rate >= p.max {
		p.rate = p.max
	} else if p.max == 0 && p.rate > 2*p.observed.rate()+10 {
		p.rate = 0
	}
}

// Throttles returns how many throttling responses were seen.
func (p *Pacer) Throttles() int64 {
	if p == nil {
		return 0
	}
	return p.throttles.Load()
}

// Rate returns the current limit in requests/s (0: unlimited).
func (p *Pacer) Rate() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rate
}

// rateMeter estimates the recent request rate over one-second windows.
type rateMeter struct {
	windowStart time.Time
	count       int
	last        float64
}

func (m *rateMeter) tick() {
	now := time.Now()
	if m.windowStart.IsZero() {
		m.windowStart = now
	}
	m.count++
	if d := now.Sub(m.windowStart); d >= time.Second {
		m.last = float64(m.count) / d.Seconds()
		m.count, m.windowStart = 0, now
	}
}

func (m *rateMeter) rate() float64 { return m.last }
