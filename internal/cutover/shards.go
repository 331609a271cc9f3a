package cutover

import (
	"fmt"
	"slices"
)

// shardReasons adds the NO-GO reasons of sharded files syncs (files sync
// --shard K/N, one checkpoint per shard, merged by report): the overall
// last sync and last verify say nothing about the other shards (shard 2's
// failed verify would hide behind shard 1's later passing one). Each shard
// needs a verify files of its own shard, or of the whole tree, that
// started after the shard's last sync and passed; and every shard 1..N
// must have synced, or its part of the tree was never migrated. lastVerify
// is the overall last verify files, already judged by verdict.
func shardReasons(runs []Run, lastVerify *Run, add func(string, ...any)) {
	lastSync := map[string]*Run{}
	lastVerifyOf := map[string]*Run{} // "" : a verify of the whole tree
	counts := map[int]bool{}
	for i := range runs {
		run := &runs[i]
		shard := str(run.Summary, "shard")
		switch run.Command {
		case "files sync":
			var k, n int
			if _, err := fmt.Sscanf(shard, "%d/%d", &k, &n); err == nil {
				lastSync[shard] = run
				counts[n] = true
			}
		case "verify files":
			lastVerifyOf[shard] = run
		}
	}
	for _, n := range slices.Sorted(mapKeys(counts)) {
		for k := 1; k <= n; k++ {
			if s := fmt.Sprintf("%d/%d", k, n); lastSync[s] == nil {
				add("files: shard %s has never run (files sync --shard %s): its part of the tree is not migrated", s, s)
			}
		}
	}
	for _, shard := range slices.Sorted(mapKeys(lastSync)) {
		sync := lastSync[shard]
		v := lastVerifyOf[shard]
		if w := lastVerifyOf[""]; w != nil && (v == nil || w.Started.After(v.Started)) {
			v = w
		}
		switch {
		case v == nil:
			add("files: shard %s has not been verified: run verify files --shard %s", shard, shard)
		case v == lastVerify:
			// Judged against the overall last sync, which is no earlier.
		case v.Started.Before(sync.Finished):
			add("files: shard %s synced at %s after its last verify files started (%s): run verify files --shard %s again",
				shard, stamp(sync.Finished), stamp(v.Started), shard)
		case v.ExitCode != 0:
			add("files: the last verify files --shard %s (%s) %s: %s", shard, stamp(v.Finished), outcome(v.ExitCode), v.Headline)
		}
	}
}

func mapKeys[K comparable, V any](m map[K]V) func(yield func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
