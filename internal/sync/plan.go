package sync

import (
	"context"
	"fmt"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/source"
)

// walk runs the parallel walker; every directory is merged with its
// checkpoint records (plan) on the walker goroutine that read it.
func (s *Syncer) walk(ctx context.Context, jobs chan<- job) error {
	w := &source.Walker{
		Root:           s.opts.Src,
		Walkers:        s.opts.Walkers,
		FollowSymlinks: s.opts.FollowSymlinks,
		Skip:           s.filtered,
	}
	return w.Walk(ctx, func(d *source.Dir) error {
		return s.plan(ctx, d, jobs)
	}, func(rel string, err error) error {
		// An unreadable directory: reported; its recorded files are not
		// considered deleted, because nothing below it was listed.
		s.fail(rel, err)
		return nil
	})
}

// filtered reports whether --include/--exclude or --shard leave rel out
// (the rules are source.Filter's, shared with verify files).
func (s *Syncer) filtered(rel string, isDir bool) bool {
	return source.Filter{Include: s.opts.Include, Exclude: s.opts.Exclude, Shard: s.opts.Shard}.Skip(rel, isDir)
}

// plan merges one directory listing (sorted) with the recorded children of
// that directory (sorted the same way) and queues the work.
func (s *Syncer) plan(ctx context.Context, d *source.Dir, jobs chan<- job) error {
	var recs []checkpoint.DirEntry
	if s.cp != nil {
		// Every 32 directories, drop the checkpoint pages read so far from
		// RSS (checkpoint.DropCachedPages): memory stays flat in N.
		if s.c.dirsPlanned.Add(1)%32 == 0 {
			_ = s.cp.DropCachedPages()
		}
		err := s.cp.ListDir(d.Rel, func(e checkpoint.DirEntry) error {
			recs = append(recs, e)
			return nil
		})
		if err != nil {
			return fmt.Errorf("checkpoint %s: %w", s.cp.Path(), err)
		}
	}
	i, j := 0, 0
	for i < len(d.Entries) || j < len(recs) {
		var e *source.Entry
		var r *checkpoint.DirEntry
		switch {
		case j >= len(recs) || (i < len(d.Entries) && d.Entries[i].Name < recs[j].Name):
			e = &d.Entries[i]
			i++
		case i >= len(d.Entries) || recs[j].Name < d.Entries[i].Name:
			r = &recs[j]
			j++
		default:
			e, r = &d.Entries[i], &recs[j]
			i++
			j++
		}
		if err := s.planOne(ctx, d.Rel, e, r, jobs); err != nil {
			return err
		}
	}
	return nil
}

func (s *Syncer) planOne(ctx context.Context, dir string, e *source.Entry, r *checkpoint.DirEntry, jobs chan<- job) error {
	var name string
	if e != nil {
		name = e.Name
	} else {
		name = r.Name
	}
	rel := source.Join(dir, name)

	// What the checkpoint has that the source no longer has (as that kind).
	if r != nil && (e == nil || (r.IsDir != (e.Kind == source.KindDir))) {
		if r.IsDir {
			if err := s.goneDir(rel); err != nil {
				return err
			}
		} else if !s.filtered(rel, false) {
			s.gone(rel, &r.Rec)
		}
		if e == nil {
			return nil
		}
		r = nil
	}
	switch e.Kind {
	case source.KindDir:
		return nil // the walker descends
	case source.KindSymlink:
		s.skip(rel, "symlink (not followed; use --follow-symlinks)")
		return nil
	case source.KindOther:
		s.skip(rel, "not a regular file (FIFO, socket or device)")
		return nil
	}
	s.c.scanned.Add(1)
	var old *checkpoint.FileRecord
	if r != nil {
		old = &r.Rec
		if !s.opts.Checksum && unchanged(e, old) {
			s.c.unchanged.Add(1)
			return nil
		}
	}
	if s.opts.DryRun && (old == nil || !s.opts.Checksum) {
		s.listWouldUpload(rel)
		s.c.uploaded.Add(1)
		s.c.bytesUploaded.Add(e.Size)
		return nil
	}
	return s.queue(ctx, jobs, job{rel: rel, entry: *e, old: old})
}

// unchanged: same size, mtime (ns), ctime and inode. ctime catches a
// same-size rewrite that restored the mtime, which aws s3 sync misses.
func unchanged(e *source.Entry, r *checkpoint.FileRecord) bool {
	return e.Size == r.Size && e.MtimeNs == r.MtimeNs && e.CtimeNs == r.CtimeNs && e.Inode == r.Inode
}

// gone handles a recorded file that is no longer on the source. With
// --delete the deletion is only planned here: it is carried out after the
// walk, when the whole run's count is known to be within --max-delete.
func (s *Syncer) gone(rel string, rec *checkpoint.FileRecord) {
	s.listMissing(rel)
	if !s.opts.Delete {
		s.c.missing.Add(1)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nDelete++
	if s.opts.DryRun {
		s.c.missing.Add(1)
		s.c.deleted.Add(1)
		return
	}
	// Keep at most what the default or given limit could allow plus one
	// more (memory stays bounded when a mass deletion is refused); the
	// exact limit is only known after the walk.
	if int64(len(s.pending)) < s.pendingCap() {
		s.pending = append(s.pending, job{rel: rel, old: rec, deletion: true})
	}
}

// pendingCap bounds the deletions kept in memory before the limit is
// known: an explicit N, else the default's and percentage's worst case
// (which needs the record count: read it once).
func (s *Syncer) pendingCap() int64 {
	if s.capKnown {
		return s.capN
	}
	s.capKnown = true
	l := s.opts.MaxDelete
	if l.Set && !l.IsPercent {
		s.capN = l.N + 1
		return s.capN
	}
	n := 0
	if s.cp != nil {
		n, _ = s.cp.CountFiles()
	}
	pct := 1.0
	if l.Set {
		pct = l.Percent
	}
	s.capN = max(100, int64(float64(n)*pct/100)) + 1
	return s.capN
}

// goneDir handles a recorded directory that vanished: all files below it.
func (s *Syncer) goneDir(rel string) error {
	if s.filtered(rel, true) {
		return nil
	}
	type item struct {
		rel string
		rec checkpoint.FileRecord
	}
	var items []item
	if err := s.cp.WalkRecorded(rel, func(r string, rec checkpoint.FileRecord) error {
		items = append(items, item{r, rec})
		return nil
	}); err != nil {
		return err
	}
	for _, it := range items {
		if s.filtered(it.rel, false) {
			continue
		}
		s.gone(it.rel, &it.rec)
	}
	if s.opts.Delete && !s.opts.DryRun {
		s.mu.Lock()
		s.dirsGone = append(s.dirsGone, rel)
		s.mu.Unlock()
	}
	return nil
}

func (s *Syncer) queue(ctx context.Context, jobs chan<- job, j job) error {
	s.c.queued.Add(1)
	select {
	case jobs <- j:
		return nil
	case <-ctx.Done():
		s.c.queued.Add(-1)
		return ctx.Err()
	}
}
