package source

import "testing"

func TestFilter(t *testing.T) {
	f := Filter{Include: []string{"*.json", "keep/*.txt"}, Exclude: []string{"tmp", "a/b/c.json"}}
	for _, c := range []struct {
		rel   string
		isDir bool
		skip  bool
	}{
		{"x.json", false, false},
		{"x.txt", false, true}, // no include matches
		{"keep/x.txt", false, false},
		{"tmp", true, true}, // excluded by base name
		{"d/tmp", true, true},
		{"d", true, false}, // includes never skip directories
		{"a/b/c.json", false, true},
		{"a/b/d.json", false, false},
	} {
		if got := f.Skip(c.rel, c.isDir); got != c.skip {
			t.Errorf("Skip(%q, %v) = %v", c.rel, c.isDir, got)
		}
	}
	for rel, skip := range map[string]bool{
		"d/tmp/x.json": true, // a directory above it is excluded
		"tmp/x.json":   true,
		"d/x.json":     false,
		"d/x.txt":      true,
		"tmpx/x.json":  false,
	} {
		if got := f.SkipPath(rel); got != skip {
			t.Errorf("SkipPath(%q) = %v", rel, got)
		}
	}
	if (Filter{}).SkipPath("anything/at/all") {
		t.Error("empty filter skips")
	}
	if err := (Filter{Exclude: []string{"[x"}}).Validate(); err == nil || err.Error()[:10] != "--exclude:" {
		t.Errorf("Validate: %v", err)
	}
}
