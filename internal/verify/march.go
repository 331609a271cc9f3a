package verify

import (
	"context"
	"fmt"
	"slices"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/source"
)

// srcItem is one source entry under the name its key segment has.
type srcItem struct {
	name  string // source.ObjectKey segment
	isDir bool
	e     *source.Entry
}

// merge walks one directory's source entries and its listing in step
// (rclone's march, one level at a time): both are sorted by (key segment,
// is-directory), so equal names meet and the rest are one-sided.
func (v *filesVerifier) merge(ctx context.Context, d *source.Dir, dirKey string, objs []objstore.DirEntry, recs []checkpoint.DirEntry, jobs chan<- contentJob) error {
	src := make([]srcItem, 0, len(d.Entries))
	for i := range d.Entries {
		e := &d.Entries[i]
		switch e.Kind {
		case source.KindFile, source.KindDir:
		default:
			v.res.skipped.Add(1) // files sync never uploads these either
			continue
		}
		seg, err := source.ObjectKey("", e.Name)
		if err != nil {
			seg = e.Name // over the length limit: reported below, never matches
		}
		src = append(src, srcItem{name: seg, isDir: e.Kind == source.KindDir, e: e})
	}
	slices.SortFunc(src, func(a, b srcItem) int { return cmpEntry(a.name, a.isDir, b.name, b.isDir) })
	sortObjects(objs)
	records := make(map[string]*checkpoint.DirEntry, len(recs))
	for i := range recs {
		records[recs[i].Name] = &recs[i]
	}

	i, j := 0, 0
	for i < len(src) || j < len(objs) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var c int
		switch {
		case i >= len(src):
			c = 1
		case j >= len(objs):
			c = -1
		default:
			c = cmpEntry(src[i].name, src[i].isDir, objs[j].Name, objs[j].IsDir)
		}
		switch {
		case c < 0:
			if err := v.sourceOnly(ctx, d.Rel, src[i], records); err != nil {
				return err
			}
			i++
		case c > 0:
			if err := v.objectOnly(ctx, d.Rel, dirKey, objs[j]); err != nil {
				return err
			}
			j++
		default:
			if !src[i].isDir {
				if err := v.both(ctx, d.Rel, src[i].e, objs[j].Info, records[src[i].e.Name], jobs); err != nil {
					return err
				}
			}
			i++
			j++
		}
	}
	return nil
}

// sourceOnly: a file with no object, or a directory with no key below it.
func (v *filesVerifier) sourceOnly(ctx context.Context, dir string, s srcItem, records map[string]*checkpoint.DirEntry) error {
	rel := source.Join(dir, s.e.Name)
	if s.isDir {
		v.markAbsent(rel) // the walker visits it: each file is then missing, without a listing
		return nil
	}
	v.files.Add(1)
	key, err := source.ObjectKey(v.o.Prefix, rel)
	if err != nil {
		v.res.add(FileDiff{Kind: KindError, Path: rel, Detail: "no object key: " + err.Error()})
		return nil
	}
	v.res.add(v.classify(FileDiff{Kind: KindMissing, Path: rel, Key: key[len(v.o.Prefix):]}, s.e, records[s.e.Name]))
	return nil
}

// objectOnly: an object whose source file is absent, or a whole prefix
// with no source directory (every object below it is listed).
func (v *filesVerifier) objectOnly(ctx context.Context, dir, dirKey string, o objstore.DirEntry) error {
	if !o.IsDir {
		return v.extraObject(o.Info)
	}
	if v.o.Filter.Skip(source.Join(dir, decodeSegment(o.Name)), true) {
		return nil // an excluded directory: not looked into, as files sync does not
	}
	n := int64(0)
	defer func() { v.res.listRequests.Add(1 + n/1000) }()
	return v.st.List(ctx, dirKey+o.Name+"/", "", func(info objstore.ObjectInfo) error {
		n++
		return v.extraObject(info)
	})
}

func (v *filesVerifier) extra(rel string, info objstore.ObjectInfo, recorded bool) FileDiff {
	d := FileDiff{Kind: KindExtra, Path: rel, Key: info.Key, ObjectSize: info.Size}
	if recorded {
		d.Kind = KindDeletedSinceSync
		d.Detail = "the file was synced, then deleted on the source (files sync --delete removes the object)"
	}
	return d
}

// both: a file and its object. Sizes are compared here; content is queued.
func (v *filesVerifier) both(ctx context.Context, dir string, e *source.Entry, info objstore.ObjectInfo, rec *checkpoint.DirEntry, jobs chan<- contentJob) error {
	v.files.Add(1)
	v.objects.Add(1)
	rel := source.Join(dir, e.Name)
	if len(v.o.Prefix)+len(info.Key) > source.MaxKeyLen {
		v.res.add(FileDiff{Kind: KindError, Path: rel, Detail: "object key longer than 1024 bytes"})
		return nil
	}
	if e.Size != info.Size {
		v.res.add(v.classify(FileDiff{Kind: KindSize, Path: rel, Key: info.Key, SourceSize: e.Size, ObjectSize: info.Size}, e, rec))
		return nil
	}
	if !v.o.Checksum && !v.o.Deep {
		v.res.matched.Add(1)
		return nil
	}
	j := contentJob{rel: rel, key: info.Key, etag: info.ETag, entry: *e}
	if !info.Modified.IsZero() {
		j.mod = info.Modified.UnixNano()
	}
	if rec != nil && !rec.IsDir {
		r := rec.Rec
		j.rec = &r
		if v.incremental && v.proofs.holds(e, info, &r) {
			if !v.proofs.resample() {
				// Proven earlier and unchanged on both sides since.
				v.proofs.carry(r.Verified.Run)
				v.provenEarlier.Add(1)
				v.res.matched.Add(1)
				return nil
			}
			v.resampled.Add(1)
		}
	}
	j.deep = v.o.Deep && sampled(v.o.SamplePct)
	if !j.deep && !v.o.Checksum {
		v.res.matched.Add(1) // not in the sample: size only
		return nil
	}
	select {
	case jobs <- j:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// classify turns a difference on a source file into "changed since sync"
// (its stat no longer matches the checkpoint record) or "not yet synced"
// (no record) when the checkpoint says the bucket cannot be expected to
// have it yet.
func (v *filesVerifier) classify(d FileDiff, e *source.Entry, rec *checkpoint.DirEntry) FileDiff {
	if v.cp == nil {
		return d
	}
	switch {
	case rec == nil || rec.IsDir:
		d.Detail = fmt.Sprintf("%s; the file has never been synced", d.Kind)
		d.Kind = KindNotSynced
	case !unchanged(e, &rec.Rec):
		d.Detail = fmt.Sprintf("%s; the file changed on the source after its last sync", d.Kind)
		d.Kind = KindChanged
	}
	return d
}

// unchanged is files sync's test: same size, mtime, ctime and inode.
func unchanged(e *source.Entry, r *checkpoint.FileRecord) bool {
	return e.Size == r.Size && e.MtimeNs == r.MtimeNs && e.CtimeNs == r.CtimeNs && e.Inode == r.Inode
}

// decodeSegment inverts source.ObjectKey for one key segment; a segment
// that is not a valid encoding is returned as it is.
func decodeSegment(seg string) string {
	s, err := source.DecodeKey("", seg)
	if err != nil {
		return seg
	}
	return s
}
