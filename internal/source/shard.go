package source

import (
	"fmt"
	"strconv"
	"strings"
)

// Shard is one of N parts of a tree (files sync --shard K/N, verify files
// --shard K/N). K counts from 1. The zero value (and N = 1) is the whole
// tree.
//
// Which part a file belongs to is a pure function of its relative path, so
// every shard, every rerun and verify files agree without talking to each
// other:
//
//   - a file with at least ShardDepth directories above it belongs with
//     its ShardDepth-th ancestor directory: the whole subtree
//     store/yyyy/mm/dd goes to one shard, chosen by a hash of that path
//     (thousands of day directories balance well, and a shard never reads
//     the others' day directories);
//   - a file higher up (in the root, store/, store/yyyy/ or
//     store/yyyy/mm/) is placed by a hash of its own path: a flat share,
//     every file in one directory, splits evenly by name.
//
// The one layout this does not balance is a huge flat directory at depth
// ShardDepth or below: it goes to one shard whole.
type Shard struct {
	K, N int
}

// ShardDepth is the depth of the directories whose subtrees are placed
// whole: the day directories of <store>/<yyyy>/<mm>/<dd>/<receipt>.
const ShardDepth = 4

// ShardRule names the placement rule. A checkpoint records it with its
// shard, so a release that changed the rule would refuse old shard
// checkpoints instead of syncing files twice or never.
const ShardRule = "dir4-fnv1a"

// MaxShards bounds N: more parts than that is a typo, not a fleet.
const MaxShards = 100000

// ParseShard parses "K/N" (1 ≤ K ≤ N). "auto/N" takes K from the first of
// the environment variables named in autoEnv that is set (0-based indexes,
// as Kubernetes Indexed Jobs and AWS Batch array jobs number their pods
// and children); getenv looks them up.
func ParseShard(spec string, getenv func(string) string, autoEnv ...string) (Shard, error) {
	ks, ns, ok := strings.Cut(spec, "/")
	n, err := strconv.Atoi(ns)
	if !ok || err != nil || n < 1 || n > MaxShards {
		return Shard{}, fmt.Errorf("--shard %q: want K/N with 1 <= K <= N <= %d, or auto/N", spec, MaxShards)
	}
	if ks == "auto" {
		for _, name := range autoEnv {
			v := getenv(name)
			if v == "" {
				continue
			}
			i, err := strconv.Atoi(v)
			if err != nil || i < 0 || i >= n {
				return Shard{}, fmt.Errorf("--shard %s: %s=%q is not an index 0..%d", spec, name, v, n-1)
			}
			return Shard{K: i + 1, N: n}, nil
		}
		return Shard{}, fmt.Errorf("--shard %s: none of %s is set (run it as a Kubernetes Indexed Job or an AWS Batch array job, or give K/N)",
			spec, strings.Join(autoEnv, ", "))
	}
	k, err := strconv.Atoi(ks)
	if err != nil || k < 1 || k > n {
		return Shard{}, fmt.Errorf("--shard %q: want K/N with 1 <= K <= N (shards count from 1), or auto/N", spec)
	}
	return Shard{K: k, N: n}, nil
}

// Active reports whether the shard is a proper part of the tree.
func (s Shard) Active() bool { return s.N > 1 }

// String is "K/N" ("" for the whole tree, 1/1 included).
func (s Shard) String() string {
	if !s.Active() {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.K, s.N)
}

// Of returns the shard (1..n) the path rel belongs to; isDir says whether
// rel is a directory. A directory above ShardDepth holds files of every
// shard: Of returns 0 for it.
func Of(rel string, isDir bool, n int) int {
	if n <= 1 {
		return 1
	}
	// unit: the ShardDepth-th directory on rel's path, if rel has one.
	depth := 0
	for i := 0; i < len(rel); i++ {
		if rel[i] == '/' {
			depth++
			if depth == ShardDepth {
				return int(shardHash(rel[:i])%uint64(n)) + 1
			}
		}
	}
	if isDir {
		if depth+1 == ShardDepth {
			return int(shardHash(rel)%uint64(n)) + 1
		}
		return 0
	}
	return int(shardHash(rel)%uint64(n)) + 1
}

// Owns reports whether rel is in the shard. For a directory: whether
// anything below it can be (every directory above ShardDepth can).
func (s Shard) Owns(rel string, isDir bool) bool {
	if !s.Active() {
		return true
	}
	k := Of(rel, isDir, s.N)
	return k == 0 || k == s.K
}

// shardHash is FNV-1a, 64 bits, with murmur3's finaliser: FNV alone puts
// paths that differ only in their last characters (…/01, …/02) into
// neighbouring low bits, which a small modulus would then group.
func shardHash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
