// Command objcheck counts, after one benchmark phase, what a tool actually did
// to its bucket, by looking at versitygw's POSIX directory (KWICKMIG_TEST_S3_DIR/
// BUCKET) rather than trusting the tool's own summary: how many objects exist,
// how many were written since the phase started, and, given gentree's change
// manifest, how many rewritten files still have stale bytes in the bucket.
//
//	objcheck -objdir S3DIR/BUCKET -since RFC3339NANO [-src TREE -manifest FILE] \
//	    -tool T -phase P -out results.jsonl
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Check is appended to the results file next to measure's records.
type Check struct {
	Tool    string `json:"tool"`
	Phase   string `json:"phase"`
	Check   bool   `json:"check"`
	Objects int    `json:"objects"`
	Written int    `json:"written"`
	// Rewritten files of the change step (by kind) and how many of them
	// the bucket does not hold with the new bytes.
	Changed map[string]int `json:"changed,omitempty"`
	Missed  map[string]int `json:"missed,omitempty"`
}

func main() {
	var c Check
	objdir := flag.String("objdir", "", "the bucket's directory on the versitygw POSIX backend")
	since := flag.String("since", "", "count objects modified after this time (RFC 3339)")
	src := flag.String("src", "", "source tree (with -manifest)")
	manifest := flag.String("manifest", "", "gentree's change manifest")
	out := flag.String("out", "", "append the JSON record here")
	flag.StringVar(&c.Tool, "tool", "", "tool name")
	flag.StringVar(&c.Phase, "phase", "", "phase name")
	flag.Parse()
	c.Check = true
	t, err := time.Parse(time.RFC3339Nano, *since)
	if *objdir == "" || err != nil {
		fmt.Fprintln(os.Stderr, "usage: objcheck -objdir DIR -since TIME [-src TREE -manifest FILE] [-out FILE]")
		os.Exit(2)
	}
	if err := count(*objdir, t, &c); err != nil {
		fmt.Fprintln(os.Stderr, "objcheck:", err)
		os.Exit(1)
	}
	if *manifest != "" {
		if err := compare(*src, *objdir, *manifest, &c); err != nil {
			fmt.Fprintln(os.Stderr, "objcheck:", err)
			os.Exit(1)
		}
	}
	missed := 0
	for _, v := range c.Missed {
		missed += v
	}
	msg := fmt.Sprintf("  %-9s %-9s bucket holds %d objects, %d written in this phase", c.Tool, c.Phase, c.Objects, c.Written)
	if c.Changed != nil {
		msg += fmt.Sprintf(", %d of the rewritten files stale %v", missed, c.Missed)
	}
	fmt.Fprintln(os.Stderr, msg)
	if *out != "" {
		b, _ := json.Marshal(c)
		f, err := os.OpenFile(*out, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err == nil {
			_, err = f.Write(append(b, '\n'))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "objcheck:", err)
			os.Exit(1)
		}
	}
}

func count(root string, since time.Time, c *Check) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir // versitygw's temporary and metadata directories
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		c.Objects++
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.ModTime().After(since) {
			c.Written++
		}
		return nil
	})
}

func compare(src, objdir, manifest string, c *Check) error {
	f, err := os.Open(manifest)
	if err != nil {
		return err
	}
	defer f.Close()
	c.Changed, c.Missed = map[string]int{}, map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rel, kind, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			continue
		}
		c.Changed[kind]++
		want, err := os.ReadFile(filepath.Join(src, rel))
		if err != nil {
			return err
		}
		got, err := os.ReadFile(filepath.Join(objdir, rel))
		if err != nil || !bytes.Equal(got, want) {
			c.Missed[kind]++
		}
	}
	return sc.Err()
}
