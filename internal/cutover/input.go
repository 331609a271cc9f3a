package cutover

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kwick/kwickmig/internal/checkpoint"
)

// Input is what the report needs from one checkpoint file, small and
// serialisable: a running command publishes it in its live file (the
// checkpoint itself is locked while it runs), and the inputs of several
// files (the state directory, shard checkpoints) merge into one.
type Input struct {
	Checkpoints []string `json:"checkpoints"`
	// Files is the number of recorded (confirmed uploaded) files.
	Files int `json:"files_recorded"`
	// Pairings are the sections' bound identities ("files", "db").
	Pairings map[string]string      `json:"pairings"`
	Runs     []checkpoint.RunRecord `json:"runs"`
	// Copies are the bulk copy sections (dbcopy, dbimport) that hold
	// progress, per table.
	Copies []CopySection `json:"copies"`
}

// CopySection is one bulk copy section's progress.
type CopySection struct {
	Section  string      `json:"section"` // dbcopy or dbimport
	Complete bool        `json:"data_complete"`
	Tables   []TableCopy `json:"tables"`
}

// ReadInput reads the report's data from one open checkpoint.
func ReadInput(cp *checkpoint.DB) (*Input, error) {
	in := &Input{Checkpoints: []string{cp.Path()}, Pairings: map[string]string{}, Runs: []checkpoint.RunRecord{}, Copies: []CopySection{}}
	// The count the open check made costs nothing; a writer's file may
	// have changed since, but a live file wants the count at the start.
	if n, ok := cp.FilesAtOpen(); ok {
		in.Files = n
	} else {
		var err error
		if in.Files, err = cp.CountFiles(); err != nil {
			return nil, fmt.Errorf("checkpoint: %w", err)
		}
	}
	for _, s := range []string{"files", "db"} {
		if b, _ := cp.Bound(s); b != "" {
			in.Pairings[s] = b
		}
	}
	if err := cp.Runs(func(rec checkpoint.RunRecord) error {
		in.Runs = append(in.Runs, rec)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	for _, section := range []string{"dbcopy", "dbimport"} {
		c, err := readCopySection(cp, section)
		if err != nil {
			return nil, err
		}
		if len(c.Tables) > 0 {
			in.Copies = append(in.Copies, c)
		}
	}
	return in, nil
}

// ReadInputJSON is ReadInput as JSON (for the live file).
func ReadInputJSON(cp *checkpoint.DB) (json.RawMessage, error) {
	in, err := ReadInput(cp)
	if err != nil {
		return nil, err
	}
	return json.Marshal(in)
}

// Merge combines the inputs of several checkpoint files into one: files
// counted in each (shards) are summed, runs of all files are put in time
// order (a run recorded in two files, e.g. a copied checkpoint, counts
// once), and each bulk copy section comes from the file holding it.
func Merge(ins ...*Input) *Input {
	out := &Input{Checkpoints: []string{}, Pairings: map[string]string{}, Runs: []checkpoint.RunRecord{}, Copies: []CopySection{}}
	type runKey struct {
		command           string
		started, finished time.Time
	}
	seen := map[runKey]bool{}
	copies := map[string]int{}
	for _, in := range ins {
		if in == nil {
			continue
		}
		out.Checkpoints = append(out.Checkpoints, in.Checkpoints...)
		out.Files += in.Files
		for s, id := range in.Pairings {
			switch old := out.Pairings[s]; {
			case old == "":
				out.Pairings[s] = id
			case !strings.Contains(old, id):
				out.Pairings[s] = old + "; " + id
			}
		}
		for _, r := range in.Runs {
			k := runKey{r.Command, r.Started.UTC(), r.Finished.UTC()}
			if seen[k] {
				continue
			}
			seen[k] = true
			out.Runs = append(out.Runs, r)
		}
		for _, c := range in.Copies {
			if i, ok := copies[c.Section]; ok {
				if len(c.Tables) > len(out.Copies[i].Tables) {
					out.Copies[i] = c
				}
				continue
			}
			copies[c.Section] = len(out.Copies)
			out.Copies = append(out.Copies, c)
		}
	}
	// Each file's runs are in the order they finished (records are
	// appended at the end of a run); merged, they keep that order.
	sort.SliceStable(out.Runs, func(i, j int) bool { return out.Runs[i].Finished.Before(out.Runs[j].Finished) })
	sort.SliceStable(out.Copies, func(i, j int) bool { return out.Copies[i].Section < out.Copies[j].Section })
	return out
}

// partState mirrors the JSON pgcopy stores per copied part
// ("part/<table>#<n>" in its dbcopy or dbimport section).
type partState struct {
	Done    bool    `json:"done"`
	Rows    int64   `json:"rows"`
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
}

// readCopySection reads one bulk copy section's per-part progress. Parts
// not started have no entry; the plan ("plan/<table>": the list of ranges)
// gives the total.
func readCopySection(cp *checkpoint.DB, section string) (CopySection, error) {
	c := CopySection{Section: section, Tables: []TableCopy{}}
	byTable := map[string]*TableCopy{}
	seen := map[string]int{}
	get := func(name string) *TableCopy {
		t := byTable[name]
		if t == nil {
			t = &TableCopy{Table: name}
			byTable[name] = t
		}
		return t
	}
	err := cp.ForEachJSON(section, func(key string, raw []byte) error {
		switch {
		case strings.HasPrefix(key, "part/"):
			name, _, _ := cutLast(strings.TrimPrefix(key, "part/"), "#")
			var p partState
			if json.Unmarshal(raw, &p) != nil {
				return nil
			}
			t := get(prettyTable(name))
			seen[t.Table]++
			if p.Done {
				t.PartsDone++
			}
			t.Rows += p.Rows
			t.Bytes += p.Bytes
			t.Seconds += p.Seconds
		case strings.HasPrefix(key, "plan/"):
			var ranges []json.RawMessage
			if json.Unmarshal(raw, &ranges) == nil {
				get(prettyTable(strings.TrimPrefix(key, "plan/"))).Parts = max(len(ranges), 1)
			}
		case key == "state":
			var st struct {
				DataDone bool `json:"data_done"`
			}
			if json.Unmarshal(raw, &st) == nil {
				c.Complete = st.DataDone
			}
		}
		return nil
	})
	if err != nil {
		return c, fmt.Errorf("checkpoint: %w", err)
	}
	for _, t := range byTable {
		t.Parts = max(t.Parts, seen[t.Table])
		c.Tables = append(c.Tables, *t)
	}
	sort.Slice(c.Tables, func(i, j int) bool { return c.Tables[i].Table < c.Tables[j].Table })
	return c, nil
}
