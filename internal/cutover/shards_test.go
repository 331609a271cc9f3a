package cutover

import (
	"strings"
	"testing"
	"time"
)

// TestVerdictShards: with sharded syncs, GO needs every shard 1..N synced
// and each verified after its last sync; one shard's failed or missing
// verify is not hidden by another shard's later passing one.
func TestVerdictShards(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 22, 0, 0, 0, time.UTC)
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	run := func(cmd, shard string, start, end, exit int) Run {
		r := Run{Command: cmd, Started: at(start), Finished: at(end), ExitCode: exit, Headline: "h", Summary: map[string]any{}}
		if shard != "" {
			r.Summary["shard"] = shard
		}
		return r
	}
	syncs := []Run{run("files sync", "1/2", 0, 5, 0), run("files sync", "2/2", 0, 6, 0)}
	for _, c := range []struct {
		name string
		runs []Run
		want []string // reasons, by substring; none: GO
	}{
		{"each shard verified", append(syncs[:2:2], run("verify files", "2/2", 7, 8, 0), run("verify files", "1/2", 9, 10, 0)), nil},
		{"a whole-tree verify covers every shard", append(syncs[:2:2], run("verify files", "", 7, 8, 0)), nil},
		{"shard 2's failed verify, shard 1's later passing one", append(syncs[:2:2], run("verify files", "2/2", 7, 8, 2), run("verify files", "1/2", 9, 10, 0)),
			[]string{"files: the last verify files --shard 2/2 (2026-11-28 22:08:00Z) differences found"}},
		{"shard 2 never verified", append(syncs[:2:2], run("verify files", "1/2", 9, 10, 0)),
			[]string{"files: shard 2/2 has not been verified: run verify files --shard 2/2"}},
		{"shard 2 synced after its verify", append(syncs[:2:2], run("verify files", "2/2", 7, 8, 0), run("verify files", "1/2", 9, 10, 0), run("files sync", "2/2", 11, 12, 0), run("verify files", "1/2", 13, 14, 0)),
			[]string{"files: shard 2/2 synced at 2026-11-28 22:12:00Z after its last verify files started (2026-11-28 22:07:00Z)"}},
		{"shard 2 never ran", []Run{syncs[0], run("verify files", "1/2", 9, 10, 0)},
			[]string{"files: shard 2/2 has never run (files sync --shard 2/2)"}},
	} {
		r := &Report{Runs: c.runs}
		r.Files.Recorded = 10
		r.verdict()
		if len(c.want) == 0 {
			if !r.Go {
				t.Errorf("%s: NO-GO %q, want GO", c.name, r.NoGoReasons)
			}
			continue
		}
		if r.Go || len(r.NoGoReasons) != len(c.want) {
			t.Errorf("%s: go %v, reasons %q; want %q", c.name, r.Go, r.NoGoReasons, c.want)
			continue
		}
		for i, w := range c.want {
			if !strings.Contains(r.NoGoReasons[i], w) {
				t.Errorf("%s: reason %q, want %q", c.name, r.NoGoReasons[i], w)
			}
		}
	}
}
