package cutover

import (
	"strings"
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/checkpoint"
)

// TestMergeInputs: files are summed, a run present in two files counts
// once, runs end up in time order, a copy section comes from the file that
// has it; a running command is listed and is a NO-GO reason.
func TestMergeInputs(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	run := func(cmd string, m int) checkpoint.RunRecord {
		return checkpoint.RunRecord{Command: cmd, Started: t0.Add(time.Duration(m) * time.Minute), Finished: t0.Add(time.Duration(m+1) * time.Minute)}
	}
	a := &Input{Checkpoints: []string{"files.db"}, Files: 10, Pairings: map[string]string{"files": "/a -> s3://b/p"},
		Runs: []checkpoint.RunRecord{run("files sync", 0), run("verify files", 5)}}
	b := &Input{Checkpoints: []string{"db.db"}, Pairings: map[string]string{"db": "src -> dst"},
		Runs:   []checkpoint.RunRecord{run("files sync", 0), run("db copy", 2), run("verify db", 6)},
		Copies: []CopySection{{Section: "dbcopy", Complete: true, Tables: []TableCopy{{Table: "public.t", Parts: 1, PartsDone: 1, Rows: 5}}}}}
	c := &Input{Checkpoints: []string{"shard.db"}, Files: 5, Pairings: map[string]string{"files": "/c -> s3://b/p"}}
	in := Merge(a, b, c)
	if in.Files != 15 || len(in.Runs) != 4 || len(in.Copies) != 1 || len(in.Checkpoints) != 3 ||
		in.Pairings["files"] != "/a -> s3://b/p; /c -> s3://b/p" || in.Pairings["db"] != "src -> dst" {
		t.Fatalf("merged: %+v", in)
	}
	for i, want := range []string{"files sync", "db copy", "verify files", "verify db"} {
		if in.Runs[i].Command != want {
			t.Fatalf("run %d: %s, want %s (time order)", i, in.Runs[i].Command, want)
		}
	}
	r := FromInput(in, nil, nil)
	if !r.Go || r.Files.Recorded != 15 || !r.DB.Complete || r.Running == nil {
		t.Fatalf("report: go=%v %q %+v", r.Go, r.NoGoReasons, r.Files)
	}
	r = FromInput(in, nil, []Running{{Command: "files sync", PID: 42, Checkpoint: "files.db", Started: t0,
		Progress: &checkpoint.LiveProgress{Done: 5, Total: 10, ETASeconds: 30}}})
	if r.Go || len(r.NoGoReasons) != 1 || !strings.HasPrefix(r.NoGoReasons[0], "files sync is running (pid 42") {
		t.Fatalf("running: go=%v %q", r.Go, r.NoGoReasons)
	}
	if line := r.Running[0].Line(); !strings.Contains(line, "5/10, ETA 30s") {
		t.Fatalf("line %q", line)
	}
}
