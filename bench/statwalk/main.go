// Command statwalk is the no-change floor: one goroutine walks the tree with
// os.ReadDir and calls Lstat on every entry (what any sync tool must do at
// least to notice a change), and prints the count of regular files and bytes.
//
//	statwalk DIR
package main

import (
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: statwalk DIR")
		os.Exit(2)
	}
	var files, bytes int64
	if err := walk(os.Args[1], &files, &bytes); err != nil {
		fmt.Fprintln(os.Stderr, "statwalk:", err)
		os.Exit(1)
	}
	fmt.Printf("%d files, %d bytes\n", files, bytes)
}

func walk(dir string, files, bytes *int64) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case st.IsDir():
			if err := walk(p, files, bytes); err != nil {
				return err
			}
		case st.Mode().IsRegular():
			*files++
			*bytes += st.Size()
		}
	}
	return nil
}
