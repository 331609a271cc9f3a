package sync

import (
	"context"
	"math/bits"
	gosync "sync"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// DefaultMaxMemory bounds the bytes buffered for uploads (--max-memory).
const DefaultMaxMemory = 512 << 20

// budget bounds the bytes held in upload buffers, whatever the number of
// uploads in flight: a small file takes its buffer's capacity from the
// budget before it is read and gives it back once the store is done with
// it. Larger files never take a buffer: they stream from disk (the store
// reads multipart uploads part by part at their offsets), so the budget
// covers every byte the uploads hold in memory.
//
// Buffers come in power-of-two size classes (16 KiB .. smallFile) with one
// pool each, and a file takes its class's size: a 1 KiB receipt never
// pins a 1 MiB buffer that the budget counted as 1 KiB.
type budget struct {
	sem   *semaphore.Weighted
	max   int64
	inUse atomic.Int64
	high  atomic.Int64
	pools [numClasses]gosync.Pool
}

const (
	minClassShift = 14 // 16 KiB
	numClasses    = 20 - minClassShift + 1
)

func newBudget(max int64) *budget {
	return &budget{sem: semaphore.NewWeighted(max), max: max}
}

// class returns the size class of an n-byte buffer and its capacity.
func class(n int64) (int, int64) {
	c := 0
	if n > 1<<minClassShift {
		c = bits.Len64(uint64(n-1)) - minClassShift
	}
	return c, 1 << (c + minClassShift)
}

// fits reports whether an n-byte file may be buffered: it is small and its
// class fits the budget at all (otherwise it is streamed from disk).
func (b *budget) fits(n int64) bool {
	if n > smallFile {
		return false
	}
	_, size := class(n)
	return size <= b.max
}

// buffer waits for room in the budget and returns a buffer of at least n
// bytes (its size class), to be given back with release. Call fits first.
func (b *budget) buffer(ctx context.Context, n int64) (*[]byte, error) {
	c, size := class(n)
	if err := b.sem.Acquire(ctx, size); err != nil {
		return nil, err
	}
	used := b.inUse.Add(size)
	for {
		h := b.high.Load()
		if used <= h || b.high.CompareAndSwap(h, used) {
			break
		}
	}
	bp, _ := b.pools[c].Get().(*[]byte)
	if bp == nil {
		buf := make([]byte, size)
		bp = &buf
	}
	return bp, nil
}

// release gives back a buffer from buffer once nothing reads it any more.
func (b *budget) release(bp *[]byte) {
	size := int64(len(*bp))
	c, _ := class(size)
	b.pools[c].Put(bp)
	b.inUse.Add(-size)
	b.sem.Release(size)
}

// HighWater returns the most bytes the upload buffers held at once.
func (b *budget) HighWater() int64 { return b.high.Load() }
