package cutover

import (
	"fmt"
	"strings"
)

// verdict decides go/no-go from the whole history (before it is trimmed).
// GO needs proof, not the absence of bad news: for each side the migration
// has (files, database), a verification that ran after the last change and
// passed; no open failures; and, when the backlog was read from the source
// now, nothing left to apply. Each unmet condition is one reason, saying
// what to run.
func (r *Report) verdict() {
	reasons := []string{}
	add := func(format string, args ...any) { reasons = append(reasons, fmt.Sprintf(format, args...)) }

	// A command still running may change what was verified (a sync
	// uploads, a copy writes): no verdict holds until it stops.
	for _, run := range r.Running {
		if run.PID > 0 {
			add("%s is running (pid %d, since %s): wait for it to stop, then report again", run.Command, run.PID, stamp(run.Started))
		} else {
			add("%s is in use by a running command: wait for it to stop, then report again", run.Checkpoint)
		}
	}
	var lastSync, lastVerifyFiles, lastChangeDB, lastVerifyDB *Run
	filesSide := r.Files.Recorded > 0
	dbSide := len(r.DB.Tables) > 0
	for i := range r.Runs {
		run := &r.Runs[i]
		switch run.Command {
		case "files sync":
			lastSync, filesSide = run, true
		case "verify files":
			lastVerifyFiles, filesSide = run, true
		case "db copy", "db import", "db final-delta", "db import-delta":
			lastChangeDB, dbSide = run, true
		case "verify db":
			if isManifestWrite(run) { // manifest_runs.go: not a verification
				dbSide = true
				continue
			}
			lastVerifyDB, dbSide = run, true
		}
	}
	if !filesSide && !dbSide {
		add("nothing recorded in %s: no files synced, no database copied", r.Checkpoint)
	}
	if filesSide {
		switch {
		case lastVerifyFiles == nil:
			add("files: verify files has not run: run verify files")
		case lastSync != nil && lastVerifyFiles.Started.Before(lastSync.Finished):
			add("files synced at %s after the last verify files started (%s): run verify files again",
				stamp(lastSync.Finished), stamp(lastVerifyFiles.Started))
		case lastVerifyFiles.ExitCode != 0:
			add("files: the last verify files (%s) %s: %s", stamp(lastVerifyFiles.Finished), outcome(lastVerifyFiles.ExitCode), runDetail(*lastVerifyFiles))
		}
	}
	if filesSide {
		shardReasons(r.Runs, lastVerifyFiles, add) // files sync --shard: each shard verified (shards.go)
	}
	if dbSide {
		switch {
		case lastVerifyDB == nil:
			add("database: verify db has not run: run verify db")
		case lastChangeDB != nil && lastVerifyDB.Started.Before(lastChangeDB.Finished):
			add("database changed by %s at %s after the last verify db started (%s): run verify db again",
				lastChangeDB.Command, stamp(lastChangeDB.Finished), stamp(lastVerifyDB.Started))
		case lastVerifyDB.ExitCode != 0:
			add("database: the last verify db (%s) %s: %s", stamp(lastVerifyDB.Finished), outcome(lastVerifyDB.ExitCode), runDetail(*lastVerifyDB))
		}
		if len(r.DB.Tables) > 0 && !r.DB.Complete {
			add("database: the bulk copy (%s) is not complete: run db copy --resume", r.DB.Method)
		}
	}
	for _, f := range r.OpenFailures {
		if f.Command == "verify files" || f.Command == "verify db" {
			continue // said above, with what to run
		}
		add("open failure: %s exited %d at %s: %s", f.Command, f.ExitCode, stamp(f.Finished), f.Detail)
	}
	if b := r.Delta.Backlog; b != nil && b.Live && b.Rows > 0 {
		add("capture backlog: %d rows not yet applied (read from the source now): stop writes, run db final-delta, then verify db", b.Rows)
	}
	r.Go, r.NoGoReasons = len(reasons) == 0, reasons
}

// VerdictLine is the verdict in one line.
func (r *Report) VerdictLine() string {
	if r.Go {
		return "GO: every side verified after its last change, no open failures"
	}
	return fmt.Sprintf("NO-GO: %d reason(s)", len(r.NoGoReasons))
}

// runDetail says why a run did not succeed, for a reason or a failure line:
// its error without the command's own "verify files: " prefix and the
// terminal's "(listed above)" (the report lists nothing above), else its
// headline.
func runDetail(run Run) string {
	if run.Error == "" {
		return run.Headline
	}
	d := strings.TrimPrefix(run.Error, run.Command+": ")
	return strings.TrimSuffix(d, " (listed above)")
}
