// Command evict drops a tree's files from the page cache
// (posix_fadvise POSIX_FADV_DONTNEED on each), so a benchmark step reads them
// from disk as it would from a share the migration host has not cached,
// without dropping every other process's cache (echo 3 > drop_caches).
//
//	evict DIR
package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: evict DIR")
		os.Exit(2)
	}
	n := 0
	err := filepath.WalkDir(os.Args[1], func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		n++
		return unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "evict:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "evict: %d files dropped from the page cache\n", n)
}
