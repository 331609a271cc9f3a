// Command gentree writes the benchmark's receipt tree (see bench/internal/receipts),
// or rewrites a fraction of it for the "1% changed" re-run.
//
//	gentree -dir TREE -n 100000 [-seed 1]
//	gentree -dir TREE -n 100000 [-seed 1] -change 1 -manifest changed.tsv
//	gentree -dir TREE -n 100000 [-seed 1] -append 2000
//
// -append writes receipts N .. N+K-1 of the same layout (new receipts land
// in new day directories, as on the live share) and leaves the rest alone.
//
// The change step rewrites every (100/pct)-th receipt with new content: half of
// them with a new size, a quarter with the same size, and a quarter with the
// same size and the old mtime put back (os.Chtimes), which size+mtime
// comparisons cannot see. The manifest lists "path<TAB>kind" per rewrite.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kwick/kwickmig/bench/internal/receipts"
)

func main() {
	dir := flag.String("dir", "", "tree root (created)")
	n := flag.Int("n", 100000, "number of files")
	seed := flag.Uint64("seed", 1, "generator seed")
	workers := flag.Int("j", 8, "parallel writers")
	change := flag.Float64("change", 0, "rewrite this percentage of the files instead of generating")
	manifest := flag.String("manifest", "", "with -change: write the rewritten paths and their kind here")
	add := flag.Int("append", 0, "write this many new receipts after the first N instead of generating")
	flag.Parse()
	if *dir == "" || *n <= 0 {
		fmt.Fprintln(os.Stderr, "usage: gentree -dir TREE -n N [-seed S] [-change PCT -manifest FILE]")
		os.Exit(2)
	}
	l := receipts.Layout{N: *n, Seed: *seed}
	start := time.Now()
	var err error
	switch {
	case *add > 0:
		err = appendFiles(l, *dir, *add)
	case *change > 0:
		err = mutate(l, *dir, *change, *manifest)
	default:
		err = generate(l, *dir, *workers)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gentree:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "gentree: done in %.2fs\n", time.Since(start).Seconds())
}

// appendFiles writes receipts l.N .. l.N+k-1.
func appendFiles(l receipts.Layout, root string, k int) error {
	buf := make([]byte, 0, receipts.MaxSize)
	for i := l.N; i < l.N+k; i++ {
		f := l.File(i)
		if err := os.MkdirAll(filepath.Join(root, f.Dir), 0o755); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(root, f.Rel), l.Body(buf, f, 0, f.Size), f.MTime); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "gentree: appended %d files\n", k)
	return nil
}

func generate(l receipts.Layout, root string, workers int) error {
	dirs := make(chan int, workers*2)
	var (
		wg       sync.WaitGroup
		firstErr atomic.Pointer[error]
		bytes    atomic.Int64
	)
	for range workers {
		wg.Go(func() {
			buf := make([]byte, 0, receipts.MaxSize)
			for d := range dirs {
				if firstErr.Load() != nil {
					continue
				}
				n, err := writeDir(l, root, d, buf)
				bytes.Add(n)
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	for d := range l.Dirs() {
		dirs <- d
	}
	close(dirs)
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return *p
	}
	fmt.Fprintf(os.Stderr, "gentree: %d files, %d day directories, %.1f MB under %s\n",
		l.N, l.Dirs(), float64(bytes.Load())/1e6, root)
	return nil
}

func writeDir(l receipts.Layout, root string, d int, buf []byte) (int64, error) {
	lo, hi := l.DirRange(d)
	var total int64
	for i := lo; i < hi; i++ {
		f := l.File(i)
		if i == lo {
			if err := os.MkdirAll(filepath.Join(root, f.Dir), 0o755); err != nil {
				return total, err
			}
		}
		if err := writeFile(filepath.Join(root, f.Rel), l.Body(buf, f, 0, f.Size), f.MTime); err != nil {
			return total, err
		}
		total += int64(f.Size)
	}
	return total, nil
}

// writeFile creates path with body and mtime through plain system calls: the
// os package's poller registration costs more than the write of a small file.
func writeFile(path string, body []byte, mtime time.Time) error {
	fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_TRUNC|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	for b := body; len(b) > 0; {
		n, err := syscall.Write(fd, b)
		if err != nil {
			syscall.Close(fd)
			return &os.PathError{Op: "write", Path: path, Err: err}
		}
		b = b[n:]
	}
	if err := syscall.Close(fd); err != nil {
		return &os.PathError{Op: "close", Path: path, Err: err}
	}
	ts := syscall.NsecToTimespec(mtime.UnixNano())
	if err := syscall.UtimesNano(path, []syscall.Timespec{ts, ts}); err != nil {
		return &os.PathError{Op: "utimes", Path: path, Err: err}
	}
	return nil
}

// Kinds of rewrite in the change step.
const (
	kindResized       = "resized"             // new content, new size, new mtime
	kindSameSize      = "same-size"           // new content, same size, new mtime
	kindSameSizeMTime = "same-size-old-mtime" // new content, same size, mtime put back
)

func mutate(l receipts.Layout, root string, pct float64, manifest string) error {
	every := int(100/pct + 0.5)
	if every < 1 {
		every = 1
	}
	var w *bufio.Writer
	if manifest != "" {
		mf, err := os.Create(manifest)
		if err != nil {
			return err
		}
		defer mf.Close()
		w = bufio.NewWriter(mf)
		defer w.Flush()
	}
	buf := make([]byte, 0, receipts.MaxSize)
	counts := map[string]int{}
	for j, i := 0, every/2; i < l.N; j, i = j+1, i+every {
		f := l.File(i)
		p := filepath.Join(root, f.Rel)
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		size := int(st.Size())
		kind := []string{kindResized, kindResized, kindSameSize, kindSameSizeMTime}[j%4]
		if kind == kindResized {
			size = l.ResizedSize(f, 1+j)
		}
		if err := os.WriteFile(p, l.Body(buf, f, 1+j, size), 0o644); err != nil {
			return err
		}
		if kind == kindSameSizeMTime {
			if err := os.Chtimes(p, st.ModTime(), st.ModTime()); err != nil {
				return err
			}
		}
		counts[kind]++
		if w != nil {
			fmt.Fprintf(w, "%s\t%s\n", f.Rel, kind)
		}
	}
	fmt.Fprintf(os.Stderr, "gentree: rewrote %d files: %d %s, %d %s, %d %s\n",
		counts[kindResized]+counts[kindSameSize]+counts[kindSameSizeMTime],
		counts[kindResized], kindResized, counts[kindSameSize], kindSameSize,
		counts[kindSameSizeMTime], kindSameSizeMTime)
	return nil
}
