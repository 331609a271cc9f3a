// Package cutover builds the whole migration's report from the checkpoint:
// files synced and pending, tables copied, delta rounds and backlog,
// verification outcomes and open failures, with the run history. It reads
// what the commands recorded (run records, the files section, the db copy
// sections) and writes it as text, JSON or one self-contained HTML page.
package cutover

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kwick/kwickmig/internal/checkpoint"
)

// Report is the migration's state (also its JSON form).
type Report struct {
	// Go is the cutover verdict; NoGoReasons says what stands in the way
	// (empty when Go).
	Go          bool     `json:"go"`
	NoGoReasons []string `json:"no_go_reasons"`
	Checkpoint  string   `json:"checkpoint"` // the files read, comma-separated
	Checkpoints []string `json:"checkpoints"`
	// Running are the commands running on these files now (each one is
	// also a NO-GO reason).
	Running       []Running      `json:"running"`
	Generated     time.Time      `json:"generated"`
	Files         FilesState     `json:"files"`
	Throughput    []SyncPoint    `json:"sync_throughput"`
	DB            DBState        `json:"db"`
	Delta         DeltaState     `json:"delta"`
	Verifications []Verification `json:"verifications"`
	OpenFailures  []Failure      `json:"open_failures"`
	// Runs is the run history, the last HistoryPerCommand runs of each
	// command; EarlierRuns sums up the rest (300 syncs make no page).
	Runs        []Run        `json:"runs"`
	EarlierRuns []RunsBefore `json:"earlier_runs"`
}

// HistoryPerCommand is how many runs of one command the history lists.
const HistoryPerCommand = 50

// RunsBefore sums up one command's runs left out of the history.
type RunsBefore struct {
	Command string         `json:"command"`
	Runs    int            `json:"runs"`
	ByExit  map[string]int `json:"by_exit_code"` // "0": 248, "2": 2
	Line    string         `json:"line"`         // … and 250 earlier files sync runs: 248 exit 0, 2 exit 2
}

// FilesState is the files side.
type FilesState struct {
	Pairing       string `json:"pairing,omitempty"` // source -> destination
	Recorded      int    `json:"files_synced"`      // files in the checkpoint (confirmed uploads)
	Syncs         int    `json:"sync_runs"`
	Uploaded      int64  `json:"files_uploaded_total"`
	BytesUploaded int64  `json:"bytes_uploaded_total"`
	// Pending is what the latest runs left to do: files that failed in the
	// last sync, plus files a later verify found changed or never synced.
	Pending     int64  `json:"files_pending"`
	PendingNote string `json:"files_pending_note,omitempty"`
	LastSync    *Run   `json:"last_sync,omitempty"`
}

// SyncPoint is one files sync run, for the throughput chart.
type SyncPoint struct {
	Started     time.Time `json:"started"`
	Files       int64     `json:"files_uploaded"`
	Bytes       int64     `json:"bytes_uploaded"`
	Seconds     float64   `json:"seconds"`
	FilesPerSec float64   `json:"files_per_second"`
	MBPerSec    float64   `json:"mb_per_second"`
}

// DBState is the bulk copy side.
type DBState struct {
	Pairing  string      `json:"pairing,omitempty"`
	Method   string      `json:"method,omitempty"` // dbcopy or dbimport: the section the tables come from
	Tables   []TableCopy `json:"tables"`
	Complete bool        `json:"data_complete"`
	// LastCopy is the last copy (or import) that finished (exit 0);
	// FailedCopies the attempts that did not, with their errors.
	LastCopy     *Run  `json:"last_copy,omitempty"`
	FailedCopies []Run `json:"failed_copies"`
}

// TableCopy is one table's bulk copy progress.
type TableCopy struct {
	Table     string  `json:"table"`
	Parts     int     `json:"parts"`
	PartsDone int     `json:"parts_done"`
	Rows      int64   `json:"rows"`
	Bytes     int64   `json:"bytes"`
	Seconds   float64 `json:"seconds"`
}

// DeltaState is the change-capture side.
type DeltaState struct {
	Rounds      int        `json:"rounds_applied"`
	RowsApplied int64      `json:"rows_applied"`
	LastRound   *time.Time `json:"last_round,omitempty"`
	Backlog     *Backlog   `json:"backlog,omitempty"`
}

// Backlog is the change log not yet applied.
type Backlog struct {
	Rows      int64     `json:"rows"`
	Bytes     int64     `json:"bytes"`
	OldestAge string    `json:"oldest_age,omitempty"`
	AsOf      time.Time `json:"as_of"`
	Live      bool      `json:"live"` // read from the source now, not from a recorded status run
}

// Verification is the latest run of one verify command.
type Verification struct {
	Command  string         `json:"command"`
	Finished time.Time      `json:"finished"`
	Outcome  string         `json:"outcome"` // all match, differences found, could not run, interrupted
	ExitCode int            `json:"exit_code"`
	Headline string         `json:"headline"`
	Summary  map[string]any `json:"summary,omitempty"`
}

// Failure is a command whose latest run did not succeed.
type Failure struct {
	Command  string    `json:"command"`
	Finished time.Time `json:"finished"`
	ExitCode int       `json:"exit_code"`
	Detail   string    `json:"detail"`
}

// Run is one line of the run history.
type Run struct {
	Command  string         `json:"command"`
	Started  time.Time      `json:"started"`
	Finished time.Time      `json:"finished"`
	Seconds  float64        `json:"seconds"`
	ExitCode int            `json:"exit_code"`
	Error    string         `json:"error,omitempty"`
	Headline string         `json:"headline"`
	Summary  map[string]any `json:"summary,omitempty"`
}

// Build reads one checkpoint. backlog, if not nil, is a live reading of
// the capture backlog (it replaces the last recorded status).
func Build(cp *checkpoint.DB, backlog *Backlog) (*Report, error) {
	in, err := ReadInput(cp)
	if err != nil {
		return nil, err
	}
	return FromInput(in, backlog, nil), nil
}

// FromInput builds the report from one checkpoint's input or a merge of
// several (see Merge); running are the commands running on them now.
func FromInput(in *Input, backlog *Backlog, running []Running) *Report {
	r := &Report{Checkpoint: strings.Join(in.Checkpoints, ", "), Checkpoints: append([]string{}, in.Checkpoints...), Generated: time.Now().UTC(),
		Running:    append([]Running{}, running...),
		Throughput: []SyncPoint{}, Verifications: []Verification{}, OpenFailures: []Failure{}, Runs: []Run{}, EarlierRuns: []RunsBefore{}}
	r.DB.FailedCopies = []Run{}
	r.Files.Recorded = in.Files
	r.Files.Pairing, r.DB.Pairing = in.Pairings["files"], in.Pairings["db"]
	for _, rec := range in.Runs {
		r.Runs = append(r.Runs, runOf(rec))
	}
	r.files()
	r.delta()
	r.verifications()
	r.failures()
	r.tables(in)
	if backlog != nil {
		r.Delta.Backlog = backlog
	}
	r.verdict()
	r.trimHistory()
	return r
}

func runOf(rec checkpoint.RunRecord) Run {
	run := Run{Command: rec.Command, Started: rec.Started, Finished: rec.Finished,
		Seconds: rec.Finished.Sub(rec.Started).Seconds(), ExitCode: rec.ExitCode, Error: rec.Error,
		Summary: rec.Summary, Headline: headline(rec.Command, rec.Summary)}
	if run.Error == "" { // records written before the error field
		run.Error = str(rec.Summary, "error")
	}
	if run.Error != "" {
		// Exit 2 is "finished, with differences": its error line is the
		// finding, not a failure to run.
		if run.Headline = runDetail(run); run.ExitCode != 2 {
			run.Headline = "error: " + run.Headline
		}
	}
	return run
}

func (r *Report) files() {
	var last *Run
	for i := range r.Runs {
		run := &r.Runs[i]
		if run.Command != "files sync" {
			continue
		}
		r.Files.Syncs++
		files, bytes := num(run.Summary, "files_uploaded"), num(run.Summary, "bytes_uploaded")
		r.Files.Uploaded += int64(files)
		r.Files.BytesUploaded += int64(bytes)
		secs := num(run.Summary, "duration_seconds")
		if secs <= 0 {
			secs = run.Seconds
		}
		p := SyncPoint{Started: run.Started, Files: int64(files), Bytes: int64(bytes), Seconds: secs}
		if secs > 0 {
			p.FilesPerSec, p.MBPerSec = files/secs, bytes/secs/1e6
		}
		r.Throughput = append(r.Throughput, p)
		last = run
	}
	if last == nil {
		return
	}
	r.Files.LastSync = last
	r.Files.Pending = int64(num(last.Summary, "files_failed"))
	notes := []string{fmt.Sprintf("%d failed in the last sync", r.Files.Pending)}
	// A verify files after the last sync knows what changed since.
	for i := range r.Runs {
		v := &r.Runs[i]
		if v.Command == "verify files" && !v.Started.Before(last.Finished) && v.ExitCode != 1 {
			n := int64(num(v.Summary, "changed_since_sync"))
			r.Files.Pending += n
			notes = append(notes[:1], fmt.Sprintf("%d changed or new since, found by verify files at %s", n, v.Finished.UTC().Format(time.DateTime)))
		}
	}
	r.Files.PendingNote = strings.Join(notes, "; ")
}

func (r *Report) delta() {
	for i := range r.Runs {
		run := &r.Runs[i]
		switch run.Command {
		case "db final-delta", "db import-delta":
			if run.ExitCode != 0 {
				continue
			}
			rounds, _ := run.Summary["rounds"].([]any)
			for _, x := range rounds {
				m, _ := x.(map[string]any)
				if b, _ := m["skipped"].(bool); b {
					continue
				}
				r.Delta.Rounds++
				r.Delta.RowsApplied += int64(num(m, "rows"))
				t := run.Finished
				r.Delta.LastRound = &t
			}
		case "db capture status":
			if run.ExitCode == 0 {
				r.Delta.Backlog = &Backlog{Rows: int64(num(run.Summary, "backlog_rows")), Bytes: int64(num(run.Summary, "backlog_bytes")),
					OldestAge: str(run.Summary, "oldest_age"), AsOf: run.Finished}
			}
		}
	}
}

func (r *Report) verifications() {
	latest := map[string]Run{}
	for _, run := range r.Runs {
		if strings.HasPrefix(run.Command, "verify ") && !isManifestWrite(&run) {
			latest[run.Command] = run
		}
	}
	for _, run := range latest {
		r.Verifications = append(r.Verifications, Verification{Command: run.Command, Finished: run.Finished,
			Outcome: outcome(run.ExitCode), ExitCode: run.ExitCode, Headline: run.Headline, Summary: run.Summary})
	}
	sort.Slice(r.Verifications, func(i, j int) bool { return r.Verifications[i].Command < r.Verifications[j].Command })
}

func outcome(code int) string {
	switch code {
	case 0:
		return "all match"
	case 2:
		return "differences found"
	case 130:
		return "interrupted"
	}
	return "could not run"
}

// failures lists commands whose latest run failed: a later success of the
// same command closes an earlier failure. db capture status and report-only
// commands do not open failures.
func (r *Report) failures() {
	latest := map[string]Run{}
	var order []string
	for _, run := range r.Runs {
		if run.Command == "db capture status" {
			continue
		}
		if _, ok := latest[run.Command]; !ok {
			order = append(order, run.Command)
		}
		latest[run.Command] = run
	}
	for _, c := range order {
		run := latest[c]
		if run.ExitCode == 0 {
			continue
		}
		r.OpenFailures = append(r.OpenFailures, Failure{Command: c, Finished: run.Finished, ExitCode: run.ExitCode, Detail: runDetail(run)})
	}
}

// tables takes the bulk copy's progress from the input (the import's
// section, when there is one, is the newer way the tables arrived) and
// splits the copy runs into the last one that finished and the failed
// attempts.
func (r *Report) tables(in *Input) {
	r.DB.Tables = []TableCopy{}
	for _, c := range in.Copies {
		if len(c.Tables) == 0 {
			continue
		}
		r.DB.Method, r.DB.Complete = c.Section, c.Complete
		r.DB.Tables = append([]TableCopy{}, c.Tables...)
	}
	for i := range r.Runs {
		switch run := r.Runs[i]; run.Command {
		case "db copy", "db import":
			if run.ExitCode == 0 {
				r.DB.LastCopy = &run
			} else {
				r.DB.FailedCopies = append(r.DB.FailedCopies, run)
			}
		}
	}
}

func cutLast(s, sep string) (string, string, bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

func num(m map[string]any, k string) float64 {
	switch v := m[k].(type) {
	case float64:
		return v
	case int:
		return float64(v)
	case int64:
		return float64(v)
	}
	return 0
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}
