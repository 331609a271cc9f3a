package sync

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/faultproxy"
	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/objstore/s3store"
)

// latencyFixture is a fixture whose store reaches versitygw through a
// fault proxy that adds lat to every request, with a connection pool for
// the default cap.
func latencyFixture(t *testing.T, lat time.Duration) (*fixture, *faultproxy.Proxy) {
	t.Helper()
	e := kmtest.S3(t)
	proxy, err := faultproxy.New(e.Endpoint, faultproxy.Faults{Latency: lat})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	f := newFixture(t, proxy.URL)
	f.s3 = e
	f.store, err = s3store.New(context.Background(), s3store.Options{
		URL: "s3://" + e.Bucket, EndpointURL: proxy.URL, Concurrency: DefaultConcurrency, Pacer: f.pacer,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f, proxy
}

func (f *fixture) receipts(n, size int) {
	for i := range n {
		f.write(fmt.Sprintf("s%02d/%05d.json", i%20, i), make([]byte, size))
	}
}

// TestAdaptiveGrowsUnderLatency: 400 ms added to every request makes the
// run latency-bound at the start value (64 in flight move at most 160
// files/s): the limit must climb well above it, and every file arrive.
// The second doubling must pay: 128 in flight ask 320 files/s, little CPU
// even under the race detector on a loaded machine (at 100 ms they ask
// 1,280/s, and a `make test` run on two cores busy with other work was
// CPU-bound there: the controller rightly undid the doubling).
// (At 30 ms, 64 in flight already ask ~2,000 files/s, more than versitygw
// serves on two cores shared with a busy test run: the run is then
// CPU-bound, the controller rightly stops growing, and the test would
// measure the machine's load.)
func TestAdaptiveGrowsUnderLatency(t *testing.T) {
	f, _ := latencyFixture(t, 400*time.Millisecond)
	const n = 1500
	f.receipts(n, 200)
	var changes []int
	res := f.run(Options{Concurrency: DefaultConcurrency, OnConcurrency: func(l int, _ string) { changes = append(changes, l) }})
	if res.FilesUploaded != n || res.FilesFailed != 0 {
		t.Fatalf("uploaded %d failed %d, want %d 0: %+v", res.FilesUploaded, res.FilesFailed, n, res.Failures)
	}
	c := res.Concurrency
	if c.Mode != "adaptive" || c.Start != startLimit || c.Cap != DefaultConcurrency {
		t.Fatalf("report %+v, want adaptive from %d capped at %d", c, startLimit, DefaultConcurrency)
	}
	// The first doubling is unconditional (no throughput to compare yet):
	// 256 needs the second one, which must have paid.
	if c.Max < 4*startLimit {
		t.Fatalf("limit rose only to %d (changes %v) at 400 ms per request: want ≥ %d", c.Max, changes, 4*startLimit)
	}
	t.Logf("%.2fs, concurrency %+v, changes %v", res.DurationSeconds, c, changes)
}

// TestAdaptiveBacksOffOnSlowDown: the same latency, then once the
// 700th file starts, a burst of 100 requests answered 503 SlowDown (a
// short one: the uploads it hits back off for a second or more before they
// retry): the limit is halved (recorded as a "throttled" change and in
// the report's concurrency_backoffs), and nothing is lost.
func TestAdaptiveBacksOffOnSlowDown(t *testing.T) {
	const lat = 30 * time.Millisecond
	f, proxy := latencyFixture(t, lat)
	const n = 1500
	f.receipts(n, 200)
	var started atomic.Int64
	var burst atomic.Int64
	burst.Store(100)
	type change struct {
		limit int
		why   string
	}
	var changes []change // OnConcurrency runs under the limiter's lock
	res := f.run(Options{Concurrency: DefaultConcurrency,
		OnConcurrency: func(l int, why string) { changes = append(changes, change{l, why}) },
		BeforeUpload: func(string) {
			if started.Add(1) == 700 {
				proxy.SetFaults(faultproxy.Faults{Latency: lat, SlowDown: 1,
					Match: func(*http.Request) bool { return burst.Add(-1) >= 0 }})
			}
		}})
	if res.FilesUploaded != n || res.FilesFailed != 0 {
		t.Fatalf("uploaded %d failed %d, want %d 0: %+v", res.FilesUploaded, res.FilesFailed, n, res.Failures)
	}
	c := res.Concurrency
	if proxy.SlowDowns.Load() == 0 || res.Throttles == 0 {
		t.Fatalf("no SlowDown was sent (proxy %d, throttles %d)", proxy.SlowDowns.Load(), res.Throttles)
	}
	halved, prev := false, c.Start
	for _, ch := range changes {
		if ch.why == "throttled" && ch.limit <= max(prev/2, floorLimit) {
			halved = true
		}
		prev = ch.limit
	}
	if c.Backoffs == 0 || !halved {
		t.Fatalf("concurrency %+v, changes %v after %d SlowDowns: want a halving", c, changes, proxy.SlowDowns.Load())
	}
	t.Logf("%.2fs, concurrency %+v, %d SlowDowns, changes %v", res.DurationSeconds, c, proxy.SlowDowns.Load(), changes)
}

// TestAdaptiveWithinMemoryBudget: whatever the limit does, the bytes
// buffered stay within --max-memory (64 KiB files, a 2 MiB budget: 32
// buffers, far fewer than the uploads in flight the latency asks for).
func TestAdaptiveWithinMemoryBudget(t *testing.T) {
	f, _ := latencyFixture(t, 30*time.Millisecond)
	const n, max = 800, 2 << 20
	f.receipts(n, 60<<10)
	s := New(f.store, f.cp, Options{Src: f.src, Prefix: f.store.Prefix(), Pacer: f.pacer, MaxMemory: max})
	res, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.FilesUploaded != n || res.FilesFailed != 0 {
		t.Fatalf("uploaded %d failed %d, want %d 0", res.FilesUploaded, res.FilesFailed, n)
	}
	if hw := s.budget.HighWater(); hw > max || hw < max/2 {
		t.Fatalf("buffers held at most %d bytes with --max-memory %d: want the budget reached, never passed", hw, max)
	}
	t.Logf("%.2fs, concurrency %+v, buffered ≤ %d", res.DurationSeconds, res.Concurrency, s.budget.HighWater())
}
