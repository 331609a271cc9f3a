package sync

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/faultproxy"
	"github.com/kwick/kwickmig/internal/kmtest"
)

// TestBudgetBounds hammers one budget from 64 goroutines with buffers of
// every size class and checks that the bytes handed out never exceed it.
func TestBudgetBounds(t *testing.T) {
	const max = 3 << 20
	b := newBudget(max)
	done := make(chan struct{})
	for g := range 64 {
		go func() {
			defer func() { done <- struct{}{} }()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 200 {
				n := r.Int64N(smallFile + 1)
				if !b.fits(n) {
					t.Errorf("%d bytes do not fit a %d budget", n, max)
					return
				}
				bp, err := b.buffer(context.Background(), n)
				if err != nil {
					t.Error(err)
					return
				}
				if _, size := class(n); int64(len(*bp)) != size || size < n {
					t.Errorf("buffer of %d bytes for %d, want %d", len(*bp), n, size)
				}
				clear((*bp)[:n])
				b.release(bp)
			}
		}()
	}
	for range 64 {
		<-done
	}
	if hw := b.HighWater(); hw > max || hw < max-smallFile {
		t.Fatalf("high-water mark %d, want in [%d, %d]", hw, max-smallFile, max)
	}
	if b.inUse.Load() != 0 {
		t.Fatalf("%d bytes still counted after every buffer was given back", b.inUse.Load())
	}
	// A class larger than the whole budget is streamed, never waited for.
	if small := newBudget(100 << 10); small.fits(200<<10) || !small.fits(50<<10) {
		t.Fatal("fits: a 200 KiB file fits a 100 KiB budget, or a 50 KiB file does not")
	}
}

// TestSyncMaxMemory syncs a mix of small and large files with 64 uploads in
// flight through a proxy that adds latency (so uploads overlap) and checks
// that the bytes buffered never exceeded --max-memory, that the budget was
// what held them down (the default budget's run buffers more), and that
// every file arrived intact.
func TestSyncMaxMemory(t *testing.T) {
	e := kmtest.S3(t)
	proxy, err := faultproxy.New(e.Endpoint, faultproxy.Faults{Latency: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	f := newFixture(t, proxy.URL)
	r := rand.New(rand.NewPCG(5, 6))
	files := map[string][]byte{}
	for i := range 200 {
		n := r.IntN(smallFile + 1)
		if i%50 == 0 {
			n = 3<<20 + i // streamed from disk
		}
		b := bytes.Repeat([]byte{byte(i)}, n)
		rel := fmt.Sprintf("d%d/f%03d.bin", i%7, i)
		files[rel] = b
		f.write(rel, b)
	}
	src := f.src
	const max = 2 << 20
	run := func(f *fixture, maxMem int64) int64 {
		s := New(f.store, f.cp, Options{Src: src, Prefix: f.store.Prefix(), Concurrency: 64, MaxMemory: maxMem})
		res, err := s.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if res.FilesFailed != 0 || res.FilesUploaded != int64(len(files)) {
			t.Fatalf("max-memory %d: uploaded %d, failed %d: %+v", maxMem, res.FilesUploaded, res.FilesFailed, res.Failures)
		}
		return s.budget.HighWater()
	}
	hw := run(f, max)
	if hw > max || hw < smallFile {
		t.Fatalf("high-water mark %d with --max-memory %d", hw, max)
	}
	for rel, want := range files {
		got, ok := f.object(rel)
		if !ok || !bytes.Equal(got, want) {
			t.Fatalf("%s: %d bytes in the bucket, want %d", rel, len(got), len(want))
		}
	}
	// The same tree into another bucket with the default budget: the
	// uploads overlap enough to buffer more than max, so it is the budget
	// that held the first run down.
	if hw2 := run(newFixture(t, proxy.URL), 0); hw2 <= max {
		t.Fatalf("high-water mark %d with the default budget: the test does not overlap uploads enough to show the cap", hw2)
	} else {
		t.Logf("high-water mark %d with a %d budget, %d with the default", hw, max, hw2)
	}
}
