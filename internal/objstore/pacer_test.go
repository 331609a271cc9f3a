package objstore

import (
	"context"
	"testing"
	"time"
)

func TestPacerCap(t *testing.T) {
	p := NewPacer(100)
	start := time.Now()
	for range 51 {
		if err := p.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// 51 starts at 100/s need at least 0.5 s.
	if d := time.Since(start); d < 450*time.Millisecond || d > 2*time.Second {
		t.Fatalf("51 requests at 100/s took %v, want about 0.5s", d)
	}
}

func TestPacerThrottleAndRecover(t *testing.T) {
	p := NewPacer(0)
	if p.Rate() != 0 {
		t.Fatalf("initial rate %v, want unlimited (0)", p.Rate())
	}
	p.Throttled()
	r1 := p.Rate()
	if r1 <= 0 {
		t.Fatalf("rate after a throttle %v, want a limit", r1)
	}
	p.Throttled() // within a second: the same burst, no second cut
	if p.Rate() != r1 {
		t.Fatalf("second throttle within 1s changed the rate %v -> %v", r1, p.Rate())
	}
	if p.Throttles() != 2 {
		t.Fatalf("throttles %d, want 2", p.Throttles())
	}
	p.mu.Lock()
	p.lastCut = time.Now().Add(-2 * time.Second)
	p.mu.Unlock()
	for range 2000 {
		p.Succeeded()
		if p.Rate() == 0 {
			break
		}
	}
	if p.Rate() != 0 {
		t.Fatalf("rate %v after many successes, want the limit lifted", p.Rate())
	}
	var nilPacer *Pacer
	if err := nilPacer.Wait(context.Background()); err != nil || nilPacer.Throttles() != 0 {
		t.Fatal("nil pacer must be a no-op")
	}
}

func TestPacerWaitCancelled(t *testing.T) {
	p := NewPacer(1)
	_ = p.Wait(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_ = p.Wait(ctx) // reserves the slot one second out
	if err := p.Wait(ctx); err == nil {
		t.Fatal("Wait returned nil after its context expired")
	}
}

// TestPacerRecoversFromLowRate: a run of throttles cut the rate to a few
// requests/s; once they stop, the rate must be back near 100/s within the
// successes of a few seconds at the growing rate, not after minutes of 1%
// steps (from 2/s: 1% per success is ~70 s to double).
func TestPacerRecoversFromLowRate(t *testing.T) {
	p := NewPacer(0)
	p.mu.Lock()
	p.rate, p.lastCut = 2, time.Now().Add(-2*time.Second)
	p.mu.Unlock()
	// Successes in one simulated second come at the rate of that second.
	secs := 0
	for ; secs < 30 && p.Rate() != 0 && p.Rate() < 100; secs++ {
		for range int(p.Rate()) {
			p.Succeeded()
		}
	}
	if secs > 8 {
		t.Fatalf("the rate took %d seconds' worth of successes to climb from 2/s to 100/s (now %.0f)", secs, p.Rate())
	}
}
