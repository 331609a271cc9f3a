package s3store

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// A request body that stops being read is a stalled upload: the endpoint
// (or something on the way) accepted the connection and stopped taking
// bytes. The per-attempt deadline grows with the body size (4 s per MiB),
// so a frozen endpoint would hold a 16 MiB part for minutes; the watchdog
// below ends the attempt after one request timeout without progress
// instead, whatever the size. Once the whole body is sent, the transport's
// response-header timeout takes over.

// stallWatchMin: smaller bodies fit in the socket buffers at once, so the
// response-header timeout already bounds them; receipts (1–8 KB) skip the
// watchdog's goroutine and ticker, which would cost on every file.
const stallWatchMin = 1 << 20

// stallReader counts the bytes read from r and when the last read was.
type stallReader struct {
	r    io.Reader
	size int64
	n    atomic.Int64
	last atomic.Int64 // unix nanoseconds
}

func newStallReader(r io.Reader, size int64) *stallReader {
	s := &stallReader{r: r, size: size}
	s.last.Store(time.Now().UnixNano())
	return s
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.n.Add(int64(n))
	s.last.Store(time.Now().UnixNano())
	return n, err
}

// Seek lets the SDK rewind the body (it may check its length).
func (s *stallReader) Seek(off int64, whence int) (int64, error) {
	sk, ok := s.r.(io.Seeker)
	if !ok {
		return 0, errors.New("body is not seekable")
	}
	pos, err := sk.Seek(off, whence)
	if err == nil {
		s.n.Store(pos)
		s.last.Store(time.Now().UnixNano())
	}
	return pos, err
}

// Close closes r if it is a Closer (the fast path's detachable body).
func (s *stallReader) Close() error {
	if c, ok := s.r.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// errStalled is the cause of an attempt ended by the stall watchdog.
var errStalled = errors.New("upload stalled: the endpoint stopped reading the body")

// watchStall cancels ctx (with errStalled as the cause) when body, not yet
// fully read, has not been read for limit. stop ends the watch and reports
// whether it fired.
func watchStall(ctx context.Context, body *stallReader, limit time.Duration) (context.Context, func() bool) {
	wctx, cancel := context.WithCancelCause(ctx)
	var fired atomic.Bool
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := min(max(limit/4, 10*time.Millisecond), time.Second)
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-wctx.Done():
				return
			case <-t.C:
				if body.n.Load() >= body.size {
					return // sent: the response-header timeout applies now
				}
				if time.Since(time.Unix(0, body.last.Load())) > limit {
					fired.Store(true)
					cancel(errStalled)
					return
				}
			}
		}
	})
	return wctx, func() bool {
		close(quit)
		wg.Wait()
		cancel(nil)
		return fired.Load()
	}
}
