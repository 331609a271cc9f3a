package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// receiptPaths is n files in <store>/<yyyy>/<mm>/<dd>/, ten per day
// directory, plus extra files higher up when top is set.
func receiptPaths(n int) []string {
	var paths []string
	for i := 0; len(paths) < n; i++ {
		store, day := i%25, i/25
		dir := fmt.Sprintf("store-%03d/%d/%02d/%02d", store, 2025+day/360, 1+day/30%12, 1+day%30)
		for f := 0; f < 10 && len(paths) < n; f++ {
			paths = append(paths, fmt.Sprintf("%s/%08d.json", dir, i*10+f))
		}
	}
	return paths
}

func flatPaths(dir string, n int) []string {
	var paths []string
	for i := range n {
		paths = append(paths, Join(dir, fmt.Sprintf("receipt-%07d.pdf", i)))
	}
	return paths
}

// checkBalance asserts that every path belongs to exactly one of n shards
// and each shard holds within tol of the mean.
func checkBalance(t *testing.T, name string, paths []string, n int, tol float64) {
	t.Helper()
	counts := make([]int, n+1)
	for _, p := range paths {
		owners := 0
		for k := 1; k <= n; k++ {
			if (Shard{K: k, N: n}).Owns(p, false) {
				owners++
				counts[k]++
			}
		}
		if owners != 1 {
			t.Fatalf("%s: %s is in %d shards of %d", name, p, owners, n)
		}
	}
	mean := float64(len(paths)) / float64(n)
	for k := 1; k <= n; k++ {
		if d := (float64(counts[k]) - mean) / mean; d > tol || d < -tol {
			t.Errorf("%s: shard %d/%d holds %d files, mean %.0f (%+.1f%%, want within ±%.0f%%)", name, k, n, counts[k], mean, 100*d, 100*tol)
		}
	}
	t.Logf("%s: %v", name, counts[1:])
}

func TestShardBalance(t *testing.T) {
	checkBalance(t, "10k store/yyyy/mm/dd files", receiptPaths(10000), 4, 0.15)
	checkBalance(t, "flat share (root)", flatPaths("", 10000), 4, 0.05)
	checkBalance(t, "flat directory", flatPaths("archive", 10000), 4, 0.05)
	checkBalance(t, "flat directory at depth 3", flatPaths("a/b/c", 10000), 4, 0.05)
	checkBalance(t, "both", append(receiptPaths(10000), flatPaths("flat", 5000)...), 4, 0.10)
	checkBalance(t, "16 shards", receiptPaths(20000), 16, 0.25)
}

// TestShardPure: the placement depends on the path alone (the same answer
// every time, from a fresh Shard value), a file deep in a tree goes with
// its day directory, and every directory on a file's path is entered by
// the file's shard (the walk would otherwise never reach the file).
func TestShardPure(t *testing.T) {
	paths := append(receiptPaths(2000), flatPaths("flat", 500)...)
	paths = append(paths, "store-001/2025/01/01/sub/deeper/x.json", "top.json", "a/b.json")
	for _, p := range paths {
		k := Of(p, false, 4)
		for range 3 {
			if again := Of(strings.Clone(p), false, 4); again != k {
				t.Fatalf("Of(%q) = %d, then %d", p, k, again)
			}
		}
		s := Shard{K: k, N: 4}
		for i := 0; i < len(p); i++ {
			if p[i] == '/' && !s.Owns(p[:i], true) {
				t.Fatalf("%s is in shard %d, but that shard does not enter %s", p, k, p[:i])
			}
		}
		for other := 1; other <= 4; other++ {
			if other != k && (Shard{K: other, N: 4}).Owns(p, false) {
				t.Fatalf("%s is in shards %d and %d", p, k, other)
			}
		}
	}
	// Subtrees below the day directory go with it.
	if Of("s/2025/01/01/sub/deeper/x.json", false, 7) != Of("s/2025/01/01/y.json", false, 7) {
		t.Error("a file below a day directory is not in the day directory's shard")
	}
	// Directories above the day level hold files of every shard.
	for _, d := range []string{"", "s", "s/2025", "s/2025/01"} {
		if Of(d, true, 4) != 0 {
			t.Errorf("Of(%q, dir) = %d, want 0 (every shard enters it)", d, Of(d, true, 4))
		}
	}
	// Fixed values: a release that changes the rule breaks every shard
	// checkpoint; this catches it (and ShardRule must change with it).
	for p, want := range map[string]int{"store-001/2025/01/01/a.json": 4, "flat/receipt-0000001.pdf": 2, "x": 2} {
		if got := Of(p, false, 4); got != want {
			t.Errorf("Of(%q, 4) = %d, want %d: the placement rule changed (bump ShardRule)", p, got, want)
		}
	}
	if !(Shard{}).Owns("anything", false) || !(Shard{K: 1, N: 1}).Owns("x", false) {
		t.Error("no shard (or 1/1) must own everything")
	}
}

func TestParseShard(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	vars := []string{"JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"}
	for spec, want := range map[string]Shard{"1/4": {1, 4}, "4/4": {4, 4}, "1/1": {1, 1}} {
		if got, err := ParseShard(spec, getenv, vars...); err != nil || got != want {
			t.Errorf("ParseShard(%q) = %v, %v", spec, got, err)
		}
	}
	for _, bad := range []string{"0/4", "5/4", "4", "a/4", "1/0", "1/x", "-1/4", "", "auto/0", "auto"} {
		if _, err := ParseShard(bad, getenv, vars...); err == nil {
			t.Errorf("ParseShard(%q) accepted", bad)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseShard(%q): error spans lines: %q", bad, err)
		}
	}
	if _, err := ParseShard("auto/4", getenv, vars...); err == nil || !strings.Contains(err.Error(), "JOB_COMPLETION_INDEX") {
		t.Errorf("auto/4 without an index: %v", err)
	}
	env["AWS_BATCH_JOB_ARRAY_INDEX"] = "3"
	if got, err := ParseShard("auto/4", getenv, vars...); err != nil || got != (Shard{4, 4}) {
		t.Errorf("AWS Batch index 3 = %v, %v; want 4/4", got, err)
	}
	env["JOB_COMPLETION_INDEX"] = "0" // Kubernetes first
	if got, err := ParseShard("auto/4", getenv, vars...); err != nil || got != (Shard{1, 4}) {
		t.Errorf("Kubernetes index 0 = %v, %v; want 1/4", got, err)
	}
	for _, bad := range []string{"4", "-1", "x", " 1"} {
		env["JOB_COMPLETION_INDEX"] = bad
		if _, err := ParseShard("auto/4", getenv, vars...); err == nil || !strings.Contains(err.Error(), "JOB_COMPLETION_INDEX") {
			t.Errorf("index %q: %v", bad, err)
		}
	}
}

// TestShardWalk: a walk with the shard's filter never reads another
// shard's day directory, and finds exactly the shard's files.
func TestShardWalk(t *testing.T) {
	root := t.TempDir()
	paths := append(receiptPaths(600), flatPaths("flat", 100)...)
	paths = append(paths, "top.txt", "store-001/2025/01/01/sub/deep.json")
	for _, p := range paths {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for k := 1; k <= 3; k++ {
		s := Shard{K: k, N: 3}
		var mu sync.Mutex
		var found []string
		w := &Walker{Root: root, Walkers: 4, Skip: Filter{Shard: s}.Skip}
		err := w.Walk(context.Background(), func(d *Dir) error {
			mu.Lock()
			defer mu.Unlock()
			if d.Rel != "" && !s.Owns(d.Rel, true) {
				t.Errorf("shard %v read %s, a directory of shard %d", s, d.Rel, Of(d.Rel, true, 3))
			}
			for _, e := range d.Entries {
				if e.Kind == KindFile {
					found = append(found, Join(d.Rel, e.Name))
				}
			}
			return nil
		}, func(rel string, err error) error { return err })
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for _, p := range paths {
			if Of(p, false, 3) == k {
				want++
			}
		}
		for _, f := range found {
			if Of(f, false, 3) != k {
				t.Errorf("shard %v found %s, a file of shard %d", s, f, Of(f, false, 3))
			}
		}
		if len(found) != want {
			t.Errorf("shard %v found %d files, want %d", s, len(found), want)
		}
		total += len(found)
	}
	if total != len(paths) {
		t.Errorf("the 3 shards found %d files in all, want %d", total, len(paths))
	}
}
