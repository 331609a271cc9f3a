package verify

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/source"
)

// run splits the tree into key ranges and verifies each (see VerifyFiles).
func (v *filesVerifier) run(ctx context.Context, jobs chan<- contentJob) error {
	w := &source.Walker{Root: v.o.Src, FollowSymlinks: v.o.FollowSymlinks, Skip: v.o.Filter.Skip}
	root, err := w.RootDir()
	if err != nil {
		return err
	}
	level := []source.DirRef{root}
	for len(level) > 0 && len(level) < v.o.Ranges {
		if level, err = v.expandLevel(ctx, w, level, jobs); err != nil {
			return err
		}
	}
	return forEach(ctx, v.o.Walkers, level, func(ctx context.Context, d source.DirRef) error {
		return v.flatRange(ctx, w, d, jobs)
	})
}

// expandLevel compares each directory of one level with its one-level
// listing (dir, march.go) and returns their subdirectories: the next level.
func (v *filesVerifier) expandLevel(ctx context.Context, w *source.Walker, level []source.DirRef, jobs chan<- contentJob) ([]source.DirRef, error) {
	var mu sync.Mutex
	var next []source.DirRef
	err := forEach(ctx, v.o.Walkers, level, func(ctx context.Context, d source.DirRef) error {
		entries, err := w.Read(d, v.readError)
		if err != nil {
			// Unreadable: reported, and nothing below it is listed, so its
			// objects are not called extra.
			return v.readError(d.Rel, err)
		}
		if err := v.dir(ctx, &source.Dir{Rel: d.Rel, Entries: entries}, jobs); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, e := range entries {
			if e.Kind == source.KindDir {
				next = append(next, w.Sub(d, e))
			}
		}
		return nil
	})
	return next, err
}

// readError records a path that could not be read; the run goes on.
func (v *filesVerifier) readError(rel string, err error) error {
	v.res.add(FileDiff{Kind: KindError, Path: rel, Detail: "cannot read: " + err.Error()})
	return nil
}

// forEach runs fn on every item, n at a time, stopping at the first error.
func forEach[T any](ctx context.Context, n int, items []T, fn func(context.Context, T) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(n)
	for _, it := range items {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return fn(gctx, it) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// flatRange verifies the subtree under d against one flat listing of its
// key prefix: the directories are read depth-first with each one's entries
// in key order (a directory sorts as its name plus "/"), which is the order
// ListObjectsV2 returns keys in, so the two streams merge in one pass.
func (v *filesVerifier) flatRange(ctx context.Context, w *source.Walker, d source.DirRef, jobs chan<- contentJob) error {
	prefix, err := dirKey(d.Rel)
	v.mu.Lock()
	absent := v.absent[d.Rel]
	delete(v.absent, d.Rel)
	v.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	objs := &objStream{ch: make(chan objstore.ObjectInfo, rangeBuffer), done: make(chan error, 1)}
	if absent || err != nil {
		// The parent's listing showed nothing below it (or its key is over
		// the length limit): every file is missing, nothing to list.
		close(objs.ch)
		objs.done <- nil
	} else {
		go func() {
			n := int64(0)
			err := v.st.List(ctx, prefix, "", func(info objstore.ObjectInfo) error {
				n++
				select {
				case objs.ch <- info:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			v.res.listRequests.Add(1 + n/1000)
			close(objs.ch)
			if err != nil {
				err = fmt.Errorf("list %s: %w", prefix, err)
			}
			objs.done <- err
		}()
	}
	m := &flatMerge{v: v, w: w, objs: objs, jobs: jobs}
	if err := objs.next(); err != nil {
		return err
	}
	err = m.dir(ctx, d, prefix)
	if err == nil {
		err = m.extraBefore(ctx, "", true)
	}
	if err != nil {
		cancel()
		for range objs.ch { // let the lister finish before returning
		}
		if objs.done != nil {
			<-objs.done
		}
		return err
	}
	return nil
}

// objStream is one range's listing, pulled one object at a time.
type objStream struct {
	ch   chan objstore.ObjectInfo
	done chan error // the lister's result, sent after ch is closed
	cur  objstore.ObjectInfo
	ok   bool // cur is valid
	seen bool // an object was listed (for the order check)
	last string
}

// next advances to the following object. A listing that is not in
// ascending key order cannot be merged: that is an error, never a report
// full of false differences.
func (s *objStream) next() error {
	info, ok := <-s.ch
	if !ok {
		s.ok = false
		if s.done != nil {
			err := <-s.done
			s.done = nil
			return err
		}
		return nil
	}
	if s.seen && info.Key <= s.last {
		return fmt.Errorf("the bucket listed %q after %q: not in key order, cannot merge (is this an S3-compatible server?)", info.Key, s.last)
	}
	s.cur, s.ok, s.seen, s.last = info, true, true, info.Key
	return nil
}

type flatMerge struct {
	v    *filesVerifier
	w    *source.Walker
	objs *objStream
	jobs chan<- contentJob
}

// flatItem is one directory entry with its key segment; sortKey orders
// entries as their keys are ordered.
type flatItem struct {
	e       *source.Entry
	seg     string
	sortKey string
}

// dir merges one directory (key prefix key) and, recursively, its
// subdirectories with the listing.
func (m *flatMerge) dir(ctx context.Context, d source.DirRef, key string) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	v := m.v
	entries, err := m.w.Read(d, v.readError)
	if err != nil {
		_ = v.readError(d.Rel, err)
		// Nothing below it was read, so its objects cannot be judged.
		return m.skipPrefix(key)
	}
	var records map[string]*checkpoint.DirEntry
	if v.cp != nil {
		var recs []checkpoint.DirEntry
		if err := v.cp.ListDir(d.Rel, func(e checkpoint.DirEntry) error {
			recs = append(recs, e)
			return nil
		}); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		records = make(map[string]*checkpoint.DirEntry, len(recs))
		for i := range recs {
			records[recs[i].Name] = &recs[i]
		}
	}
	items := make([]flatItem, 0, len(entries))
	for i := range entries {
		e := &entries[i]
		if e.Kind != source.KindFile && e.Kind != source.KindDir {
			v.res.skipped.Add(1) // files sync never uploads these either
			continue
		}
		seg, err := source.ObjectKey("", e.Name)
		if err != nil {
			seg = e.Name // over the length limit: reported by sourceOnly, never matches
		}
		it := flatItem{e: e, seg: seg, sortKey: seg}
		if e.Kind == source.KindDir {
			it.sortKey += "/"
		}
		items = append(items, it)
	}
	slices.SortFunc(items, func(a, b flatItem) int { return cmpString(a.sortKey, b.sortKey) })
	for _, it := range items {
		k := key + it.sortKey
		if err := m.extraBefore(ctx, k, false); err != nil {
			return err
		}
		if it.e.Kind == source.KindDir {
			if err := m.dir(ctx, m.w.Sub(d, *it.e), k); err != nil {
				return err
			}
			continue
		}
		if m.objs.ok && m.objs.cur.Key == k {
			if err := v.both(ctx, d.Rel, it.e, m.objs.cur, records[it.e.Name], m.jobs); err != nil {
				return err
			}
			if err := m.objs.next(); err != nil {
				return err
			}
			continue
		}
		if err := v.sourceOnly(ctx, d.Rel, srcItem{name: it.seg, e: it.e}, records); err != nil {
			return err
		}
	}
	return nil
}

// extraBefore reports every listed object whose key sorts before key (all
// remaining ones if all): no source file has them.
func (m *flatMerge) extraBefore(ctx context.Context, key string, all bool) error {
	for m.objs.ok && (all || m.objs.cur.Key < key) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := m.v.extraObject(m.objs.cur); err != nil {
			return err
		}
		if err := m.objs.next(); err != nil {
			return err
		}
	}
	return nil
}

// skipPrefix passes over the objects below an unreadable directory.
func (m *flatMerge) skipPrefix(prefix string) error {
	for m.objs.ok && len(m.objs.cur.Key) >= len(prefix) && m.objs.cur.Key[:len(prefix)] == prefix {
		m.v.objects.Add(1)
		if err := m.objs.next(); err != nil {
			return err
		}
	}
	return nil
}

// extraObject reports an object with no source file: extra, or deleted
// since sync when the checkpoint recorded its file. Objects --include or
// --exclude leave out are counted as listed, nothing more.
func (v *filesVerifier) extraObject(info objstore.ObjectInfo) error {
	v.objects.Add(1)
	rel, err := source.DecodeKey("", info.Key)
	if err != nil {
		rel = info.Key
	}
	if v.o.Filter.SkipPath(rel) {
		return nil
	}
	recorded := false
	if v.cp != nil {
		_, ok, err := v.cp.Lookup(rel)
		if err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		recorded = ok
	}
	v.res.add(v.extra(rel, info, recorded))
	return nil
}
