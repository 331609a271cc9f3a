package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/source"
)

// Directories with more than bigDir entries are never compared through a
// one-level listing (it would be held in memory whole): they are listed
// flat, in key ranges of about chunkItems entries that run in parallel, so
// one huge flat directory of receipts keeps every lister busy too.
var (
	bigDir     = 10000
	chunkItems = 5000
)

// rangeRoot is one subtree to list flat; entries, if not nil, is its
// top directory already read.
type rangeRoot struct {
	dir     source.DirRef
	entries []source.Entry
}

// run splits the tree into key ranges and verifies each (see VerifyFiles).
func (v *filesVerifier) run(ctx context.Context, jobs chan<- contentJob) error {
	w := &source.Walker{Root: v.o.Src, FollowSymlinks: v.o.FollowSymlinks, Skip: v.o.Filter.Skip}
	root, err := w.RootDir()
	if err != nil {
		return err
	}
	v.listers = make(chan struct{}, v.o.Walkers)
	level := []rangeRoot{{dir: root}}
	var ranges []rangeRoot
	for len(level) > 0 && len(level) < v.o.Ranges {
		var big []rangeRoot
		if level, big, err = v.expandLevel(ctx, w, level, jobs); err != nil {
			return err
		}
		ranges = append(ranges, big...)
	}
	ranges = append(ranges, level...)
	return forEach(ctx, v.o.Walkers, ranges, func(ctx context.Context, r rangeRoot) error {
		return v.flatRange(ctx, w, r, jobs)
	})
}

// expandLevel compares each directory of one level with its one-level
// listing (dir, march.go) and returns their subdirectories: the next level;
// and the directories too big for that, to be listed flat.
func (v *filesVerifier) expandLevel(ctx context.Context, w *source.Walker, level []rangeRoot, jobs chan<- contentJob) (next, big []rangeRoot, err error) {
	var mu sync.Mutex
	err = forEach(ctx, v.o.Walkers, level, func(ctx context.Context, r rangeRoot) error {
		entries, err := w.Read(r.dir, v.readError)
		if err != nil {
			// Unreadable: reported, and nothing below it is listed, so its
			// objects are not called extra.
			return v.readError(r.dir.Rel, err)
		}
		if len(entries) > bigDir {
			mu.Lock()
			big = append(big, rangeRoot{dir: r.dir, entries: entries})
			mu.Unlock()
			return nil
		}
		if err := v.dir(ctx, &source.Dir{Rel: r.dir.Rel, Entries: entries}, jobs); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, e := range entries {
			if e.Kind == source.KindDir {
				next = append(next, rangeRoot{dir: w.Sub(r.dir, e)})
			}
		}
		return nil
	})
	return next, big, err
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

// flatRange verifies the subtree under r against a flat listing of its
// key prefix: the directories are read depth-first with each one's entries
// in key order (a directory sorts as its name plus "/"), which is the order
// ListObjectsV2 returns keys in, so the two streams merge in one pass. A
// big top directory is cut into chunks of entries, each merged with its
// own key range of the listing, in parallel.
func (v *filesVerifier) flatRange(ctx context.Context, w *source.Walker, r rangeRoot, jobs chan<- contentJob) error {
	prefix, err := dirKey(r.dir.Rel)
	v.mu.Lock()
	absent := v.absent[r.dir.Rel]
	delete(v.absent, r.dir.Rel)
	v.mu.Unlock()
	// The parent's listing showed nothing below it (or its key is over the
	// length limit): every file is missing, nothing to list.
	noList := absent || err != nil
	m := &flatMerge{v: v, w: w, jobs: jobs}
	entries := r.entries
	if entries == nil {
		if entries, err = w.Read(r.dir, v.readError); err != nil {
			return v.readError(r.dir.Rel, err) // nothing listed: its objects are not judged
		}
	}
	items, records, err := m.prepare(r.dir, entries)
	if err != nil {
		return err
	}
	chunks := chunk(items, prefix)
	return forEach(ctx, len(chunks), chunks, func(ctx context.Context, c itemChunk) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		objs := v.listRange(ctx, prefix, c.after, c.upto, noList)
		defer objs.close(cancel)
		cm := *m
		cm.objs = objs
		if err := objs.next(); err != nil {
			return err
		}
		if err := cm.items(ctx, r.dir, prefix, c.items, records); err != nil {
			return err
		}
		return cm.extraBefore(ctx, "", true)
	})
}

// itemChunk is a run of one directory's entries and the key range
// (after, upto] that holds their objects ("" = open end).
type itemChunk struct {
	items       []flatItem
	after, upto string
}

// chunk cuts a directory's entries (in key order) into chunks of about
// chunkItems. Cuts fall after a file, whose key then ends one range and
// starts the next, so the ranges cover the prefix without gap or overlap.
func chunk(items []flatItem, prefix string) []itemChunk {
	var out []itemChunk
	start, after := 0, ""
	for i := range items {
		if i+1-start >= chunkItems && i+1 < len(items) && items[i].e.Kind == source.KindFile {
			upto := prefix + items[i].sortKey
			out = append(out, itemChunk{items: items[start : i+1], after: after, upto: upto})
			start, after = i+1, upto
		}
	}
	return append(out, itemChunk{items: items[start:], after: after})
}

// errEndOfRange stops a listing at the end of its key range.
var errEndOfRange = errors.New("end of key range")

// listRange starts listing the keys under prefix in (after, upto] into a
// stream. Listings run on at most Walkers goroutines at once (listers),
// whatever the mix of ranges and chunks.
func (v *filesVerifier) listRange(ctx context.Context, prefix, after, upto string, none bool) *objStream {
	objs := &objStream{ch: make(chan objstore.ObjectInfo, rangeBuffer), done: make(chan error, 1)}
	if none {
		close(objs.ch)
		objs.done <- nil
		return objs
	}
	go func() {
		n := int64(0)
		var err error
		select {
		case v.listers <- struct{}{}:
			err = v.st.List(ctx, prefix, after, func(info objstore.ObjectInfo) error {
				if upto != "" && info.Key > upto {
					return errEndOfRange
				}
				n++
				select {
				case objs.ch <- info:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			<-v.listers
			v.res.listRequests.Add(1 + n/1000)
		case <-ctx.Done():
			err = ctx.Err()
		}
		close(objs.ch)
		if errors.Is(err, errEndOfRange) {
			err = nil
		} else if err != nil {
			err = fmt.Errorf("list %s: %w", prefix, err)
		}
		objs.done <- err
	}()
	return objs
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

// close stops the lister (cancel is its context's) and waits for it.
func (s *objStream) close(cancel context.CancelFunc) {
	cancel()
	for range s.ch {
	}
	if s.done != nil {
		<-s.done
		s.done = nil
	}
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
	entries, err := m.w.Read(d, m.v.readError)
	if err != nil {
		_ = m.v.readError(d.Rel, err)
		// Nothing below it was read, so its objects cannot be judged.
		return m.skipPrefix(key)
	}
	items, records, err := m.prepare(d, entries)
	if err != nil {
		return err
	}
	return m.items(ctx, d, key, items, records)
}

// prepare puts a directory's entries in key order and loads its records.
func (m *flatMerge) prepare(d source.DirRef, entries []source.Entry) ([]flatItem, map[string]*checkpoint.DirEntry, error) {
	v := m.v
	var records map[string]*checkpoint.DirEntry
	if v.cp != nil {
		recs, err := v.dirRecords(d.Rel)
		if err != nil {
			return nil, nil, err
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
	return items, records, nil
}

// items merges entries of directory d (key prefix key), in key order,
// with the listing.
func (m *flatMerge) items(ctx context.Context, d source.DirRef, key string, items []flatItem, records map[string]*checkpoint.DirEntry) error {
	v := m.v
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
