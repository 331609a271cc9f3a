package verify

import (
	"context"

	"golang.org/x/sync/errgroup"

	"github.com/kwick/kwickmig/internal/objstore"
)

// rangeBuffer is how many listed objects one key range may hold ahead of
// the consumer.
const rangeBuffer = 2000

// listOrdered calls fn for every object of the store in ascending key
// order, listing up to jobs top-level key ranges (the root's common
// prefixes) concurrently. Ranges are consumed in order; each buffers at
// most rangeBuffer objects, so memory is bounded by jobs × rangeBuffer
// whatever the bucket's size. Cost: one request per 1,000 objects plus one
// per top-level prefix.
func listOrdered(ctx context.Context, st FileStore, jobs int, fn func(objstore.ObjectInfo) error) error {
	var tops []objstore.DirEntry
	if err := st.ListDir(ctx, "", func(e objstore.DirEntry) error {
		tops = append(tops, e)
		return nil
	}); err != nil {
		return err
	}
	type keyRange struct {
		objs chan objstore.ObjectInfo
		err  error // set before objs is closed
	}
	g, gctx := errgroup.WithContext(ctx)
	ranges := make(chan *keyRange, max(jobs-1, 0))
	g.Go(func() error {
		defer close(ranges)
		for _, e := range tops {
			r := &keyRange{objs: make(chan objstore.ObjectInfo, rangeBuffer)}
			select {
			case ranges <- r:
			case <-gctx.Done():
				return gctx.Err()
			}
			if !e.IsDir {
				r.objs <- e.Info
				close(r.objs)
				continue
			}
			g.Go(func() error {
				defer close(r.objs)
				r.err = st.List(gctx, e.Name+"/", "", func(info objstore.ObjectInfo) error {
					select {
					case r.objs <- info:
						return nil
					case <-gctx.Done():
						return gctx.Err()
					}
				})
				return r.err
			})
		}
		return nil
	})
	g.Go(func() error {
		for r := range ranges {
			for info := range r.objs {
				if err := fn(info); err != nil {
					return err
				}
			}
			if r.err != nil {
				return r.err
			}
		}
		return nil
	})
	return g.Wait()
}
