// Package source reads the file tree being migrated: a parallel directory
// walker that hands out one sorted directory at a time, and the mapping of
// relative paths to object keys. files sync and verify files both use it.
package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Kind classifies a directory entry.
type Kind uint8

const (
	KindFile    Kind = iota // regular file (or, with FollowSymlinks, a link to one)
	KindDir                 // directory (or, with FollowSymlinks, a link to one)
	KindSymlink             // symbolic link, not followed
	KindOther               // FIFO, socket, device: never uploaded
)

// Entry is one name in a directory, with the attributes change detection
// needs. Times are Unix nanoseconds.
type Entry struct {
	Name    string
	Kind    Kind
	Size    int64
	MtimeNs int64
	CtimeNs int64
	Inode   uint64
	Dev     uint64
}

// Dir is one directory's contents, sorted by name (bytewise).
type Dir struct {
	Rel     string // "" for the root, else "a/b"
	Entries []Entry
}

// Walker walks a tree in parallel.
type Walker struct {
	Root           string
	Walkers        int  // directories read concurrently (default 32: NFS latency, not cores)
	FollowSymlinks bool // follow links to files and directories, with loop detection
	// Skip, if set, is asked about every entry (rel path, is a directory);
	// true leaves it out of Dir.Entries and, for a directory, unvisited.
	Skip func(rel string, isDir bool) bool
}

// ErrorFunc receives per-path problems (unreadable directory, symlink loop).
// The walk goes on; returning an error aborts it.
type ErrorFunc func(rel string, err error) error

// Walk reads every directory under Root and calls fn once per directory,
// concurrently from up to Walkers goroutines. fn must be safe for concurrent
// use. Walk returns the first error returned by fn or errFn, or ctx's error.
// Only one directory listing per walker is held in memory.
func (w *Walker) Walk(ctx context.Context, fn func(*Dir) error, errFn ErrorFunc) error {
	n := w.Walkers
	if n <= 0 {
		n = 32
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	q := &dirQueue{}
	q.cond = sync.NewCond(&q.mu)
	root, err := w.RootDir()
	if err != nil {
		return err
	}
	q.push(root)

	// Cancellation wakes the waiters.
	go func() {
		<-ctx.Done()
		q.mu.Lock()
		q.stopped = true
		q.cond.Broadcast()
		q.mu.Unlock()
	}()

	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				item, ok := q.pop()
				if !ok {
					return
				}
				err := w.visit(ctx, item, q, fn, errFn)
				q.done()
				if err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

func (w *Walker) visit(ctx context.Context, item DirRef, q *dirQueue, fn func(*Dir) error, errFn ErrorFunc) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	entries, err := w.Read(item, errFn)
	if err != nil {
		return errFn(item.Rel, err)
	}
	d := &Dir{Rel: item.Rel, Entries: entries}
	if err := fn(d); err != nil {
		return err
	}
	for _, e := range entries {
		if e.Kind == KindDir {
			q.push(w.Sub(item, e))
		}
	}
	return nil
}

// DirRef names a directory for Read: its relative path and, with
// FollowSymlinks, the directories above it (for loop detection). Walk
// uses it; so do callers that need their own visiting order (verify files
// reads subtrees depth-first in key order).
type DirRef struct {
	Rel       string
	ancestors []devIno
}

// RootDir checks that Root is a directory and returns its DirRef.
func (w *Walker) RootDir() (DirRef, error) {
	rootInfo, err := os.Stat(w.Root)
	if err != nil {
		return DirRef{}, fmt.Errorf("source %s: %w", w.Root, err)
	}
	if !rootInfo.IsDir() {
		return DirRef{}, fmt.Errorf("source %s: not a directory", w.Root)
	}
	root := DirRef{}
	if w.FollowSymlinks {
		if st, ok := rootInfo.Sys().(*syscall.Stat_t); ok {
			root.ancestors = []devIno{{uint64(st.Dev), st.Ino}}
		}
	}
	return root, nil
}

// Sub is the DirRef of e, a directory entry read from d.
func (w *Walker) Sub(d DirRef, e Entry) DirRef {
	child := DirRef{Rel: Join(d.Rel, e.Name)}
	if w.FollowSymlinks {
		child.ancestors = append(slices.Clip(d.ancestors), devIno{e.Dev, e.Inode})
	}
	return child
}

// Read lists one directory as Walk does: sorted by name, every entry
// lstat-ed (stat-ed with FollowSymlinks), Skip applied, per-entry problems
// passed to errFn. An error means the directory itself could not be read.
func (w *Walker) Read(d DirRef, errFn ErrorFunc) ([]Entry, error) {
	return w.readDir(d.Rel, d.ancestors, errFn)
}

// readDir lists one directory, lstat-ing every entry.
// With FollowSymlinks, a directory that is one of its own ancestors (by
// device and inode) is a loop: reported, not entered. The same directory
// reached through two different links is walked twice, as find -L does.
func (w *Walker) readDir(rel string, ancestors []devIno, errFn ErrorFunc) ([]Entry, error) {
	dir := filepath.Join(w.Root, rel)
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	entries := make([]Entry, 0, len(names))
	// fstatat relative to the open directory: the kernel resolves one name,
	// not the whole path again for every entry (it matters on deep NFS trees).
	dirfd := int(f.Fd())
	for _, name := range names {
		childRel := Join(rel, name)
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed since the listing: simply not there
			}
			if err := errFn(childRel, err); err != nil {
				return nil, err
			}
			continue
		}
		e := entryFromStat(name, &st)
		if e.Kind == KindSymlink && w.FollowSymlinks {
			if err := unix.Fstatat(dirfd, name, &st, 0); err != nil {
				if err := errFn(childRel, fmt.Errorf("follow symlink: %w", err)); err != nil {
					return nil, err
				}
				continue
			}
			e = entryFromStat(name, &st)
		}
		if e.Kind == KindDir && slices.Contains(ancestors, devIno{e.Dev, e.Inode}) {
			if err := errFn(childRel, errors.New("symlink loop: points to one of its own parent directories")); err != nil {
				return nil, err
			}
			continue
		}
		if w.Skip != nil && w.Skip(childRel, e.Kind == KindDir) {
			continue
		}
		entries = append(entries, e)
	}
	return entries, nil
}

func entryFromStat(name string, st *unix.Stat_t) Entry {
	e := Entry{
		Name:    name,
		Size:    st.Size,
		MtimeNs: st.Mtim.Nano(),
		CtimeNs: st.Ctim.Nano(),
		Inode:   st.Ino,
		Dev:     st.Dev,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		e.Kind = KindFile
	case unix.S_IFDIR:
		e.Kind = KindDir
	case unix.S_IFLNK:
		e.Kind = KindSymlink
	default:
		e.Kind = KindOther
	}
	return e
}

// Join joins a relative directory and a name with "/".
func Join(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}

// Split splits a relative path into its directory and name.
func Split(rel string) (dir, name string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return "", rel
	}
	return rel[:i], rel[i+1:]
}

// dirQueue is the set of directories still to read, LIFO so the walk stays
// depth-first and the queue small. pending counts directories queued or being
// read; the walk ends when it reaches zero.
type dirQueue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	dirs    []DirRef
	pending int
	stopped bool
}

type devIno [2]uint64

func (q *dirQueue) push(d DirRef) {
	q.mu.Lock()
	q.dirs = append(q.dirs, d)
	q.pending++
	q.cond.Signal()
	q.mu.Unlock()
}

func (q *dirQueue) pop() (DirRef, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.dirs) == 0 && q.pending > 0 && !q.stopped {
		q.cond.Wait()
	}
	if q.stopped || len(q.dirs) == 0 {
		return DirRef{}, false
	}
	rel := q.dirs[len(q.dirs)-1]
	q.dirs = q.dirs[:len(q.dirs)-1]
	return rel, true
}

func (q *dirQueue) done() {
	q.mu.Lock()
	q.pending--
	if q.pending == 0 {
		q.cond.Broadcast()
	}
	q.mu.Unlock()
}
