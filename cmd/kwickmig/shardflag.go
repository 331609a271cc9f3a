package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/source"
)

// shardIndexEnv are the variables --shard auto/N reads K from, in order:
// the pod index of a Kubernetes Indexed Job, the child index of an AWS
// Batch array job. Both count from 0; shards count from 1.
var shardIndexEnv = []string{"JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"}

// shardSection is the checkpoint binding that records a checkpoint's
// shard: a shard's checkpoint holds only its part of the tree, so using it
// for another part (or for the whole tree) would upload that part again
// and, with --delete, read "not recorded" as nothing.
const shardSection = "files-shard"

// shardOption is --shard K/N (files sync, verify files).
type shardOption struct {
	spec string
}

func (o *shardOption) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.spec, "shard", "", "only part K of N of the tree (K = 1..N), with its own checkpoint (files-shard-K-of-N.db in the --state directory); "+
		"auto/N takes K from $JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or $AWS_BATCH_JOB_ARRAY_INDEX (AWS Batch array job), 0-based")
}

// get parses the flag ("" is the whole tree).
func (o *shardOption) get() (source.Shard, error) {
	if o.spec == "" {
		return source.Shard{}, nil
	}
	s, err := source.ParseShard(o.spec, os.Getenv, shardIndexEnv...)
	if err != nil {
		return s, usageErrorf("%v", err)
	}
	return s, nil
}

// shardStateFile is the state directory's checkpoint file of a command
// with --shard K/N (N > 1), "" for any other command. Each shard has its
// own file, so N shards can run side by side on one state directory (a
// bbolt file has one writer); report reads them all (*.db).
func shardStateFile(cmd *cobra.Command, dir string) (string, error) {
	f := cmd.Flags().Lookup("shard")
	if f == nil || f.Value.String() == "" {
		return "", nil
	}
	o := shardOption{spec: f.Value.String()}
	s, err := o.get()
	if err != nil || !s.Active() {
		return "", err
	}
	return filepath.Join(dir, fmt.Sprintf("files-shard-%d-of-%d.db", s.K, s.N)), nil
}

// bindShard checks that cp belongs to shard s (the zero Shard: to the
// whole tree) and, with write, records s in a checkpoint that has none
// yet. It runs before bindFiles, so a whole-tree checkpoint is recognised
// by its files binding.
func bindShard(cp *checkpoint.DB, s source.Shard, write bool) error {
	rec, err := cp.Bound(shardSection)
	if err != nil {
		return err
	}
	want := ""
	if s.Active() {
		want = s.String() + " " + source.ShardRule
	}
	switch {
	case rec == want:
		return nil
	case rec == "":
		files, err := cp.Bound("files")
		if err != nil {
			return err
		}
		if n, _ := cp.FilesAtOpen(); files != "" || n > 0 {
			return shardMismatchf("checkpoint %s records a sync of the whole tree, not --shard %s: each shard has its own checkpoint "+
				"(leave out --checkpoint to use files-shard-%d-of-%d.db in the --state directory)", cp.Path(), s, s.K, s.N)
		}
		if write {
			return cp.Bind(shardSection, want)
		}
		return nil
	case want == "":
		return shardMismatchf("checkpoint %s belongs to shard %s: give --shard %s (it holds only that part of the tree)",
			cp.Path(), shardName(rec), shardName(rec))
	}
	return shardMismatchf("checkpoint %s belongs to shard %s, not --shard %s: each shard has its own checkpoint "+
		"(leave out --checkpoint to use files-shard-%d-of-%d.db in the --state directory)", cp.Path(), shardName(rec), s, s.K, s.N)
}

// shardMismatch is a refused checkpoint: it matches checkpoint.ErrMismatch
// (exit 1), and says only its own sentence.
type shardMismatch struct{ msg string }

func (e *shardMismatch) Error() string        { return e.msg }
func (e *shardMismatch) Is(target error) bool { return target == checkpoint.ErrMismatch }

func shardMismatchf(format string, args ...any) error {
	return &shardMismatch{msg: fmt.Sprintf(format, args...)}
}

// shardName is the K/N of a recorded binding ("K/N RULE"), or the whole
// binding when its rule is not this release's.
func shardName(rec string) string {
	var k, n int
	var rule string
	if _, err := fmt.Sscanf(rec, "%d/%d %s", &k, &n, &rule); err == nil && rule == source.ShardRule {
		return fmt.Sprintf("%d/%d", k, n)
	}
	return fmt.Sprintf("%q (another placement rule than this release's %s)", rec, source.ShardRule)
}
