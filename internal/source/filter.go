package source

import (
	"fmt"
	"path"
	"strings"
)

// Filter is --include/--exclude, shared by files sync and verify files so
// that both leave out exactly the same paths.
type Filter struct {
	Include []string // globs; a file must match one (if any are given)
	Exclude []string // globs; a matching file or directory is left out
	// Shard, if active, leaves out every path of the other shards (and the
	// directories that can only hold theirs: the walk never reads them).
	Shard Shard
}

// Validate checks the patterns up front, naming the flag of a bad one.
func (f Filter) Validate() error {
	for flag, globs := range map[string][]string{"--include": f.Include, "--exclude": f.Exclude} {
		for _, g := range globs {
			if _, err := path.Match(g, ""); err != nil {
				return fmt.Errorf("%s: bad glob %q: %w", flag, g, err)
			}
		}
	}
	return nil
}

// Empty reports whether the filter leaves nothing out.
func (f Filter) Empty() bool {
	return len(f.Include) == 0 && len(f.Exclude) == 0 && !f.Shard.Active()
}

// Skip reports whether the filter leaves rel out, as Walker.Skip wants it.
// Excludes match files and directories (by full relative path or by base
// name); includes only select files.
func (f Filter) Skip(rel string, isDir bool) bool {
	if !f.Shard.Owns(rel, isDir) {
		return true
	}
	for _, g := range f.Exclude {
		if globMatch(g, rel) {
			return true
		}
	}
	if isDir || len(f.Include) == 0 {
		return false
	}
	for _, g := range f.Include {
		if globMatch(g, rel) {
			return false
		}
	}
	return true
}

// SkipPath reports whether the file rel, or any directory above it, is left
// out: the test for an object key decoded back to a path, which no walk
// has vetted directory by directory.
func (f Filter) SkipPath(rel string) bool {
	if f.Empty() {
		return false
	}
	for i := 0; i < len(rel); i++ {
		if rel[i] == '/' && f.Skip(rel[:i], true) {
			return true
		}
	}
	return f.Skip(rel, false)
}

// globMatch matches a glob against the relative path, or, for a pattern
// without "/", against the base name (as rsync and rclone users expect).
func globMatch(glob, rel string) bool {
	if !strings.Contains(glob, "/") {
		_, name := Split(rel)
		ok, _ := path.Match(glob, name)
		return ok
	}
	ok, _ := path.Match(glob, rel)
	return ok
}
