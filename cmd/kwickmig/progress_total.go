package main

import (
	"github.com/kwick/kwickmig/internal/checkpoint"
)

// progressLogEvery, when positive, replaces the number of progress updates
// between two log lines on a non-terminal (tests set 1 to see every one).
var progressLogEvery int

// previousCount is the progress total a run can expect without scanning
// anything: the count a summary field of the latest finished run of one of
// the given commands recorded (e.g. files sync's files_scanned). Runs that
// were interrupted or could not run (exit 1, 130) counted part of the work
// and are passed over. 0 means unknown.
func previousCount(cp *checkpoint.DB, fields map[string]string) int64 {
	if cp == nil {
		return 0
	}
	var n int64
	_ = cp.Runs(func(r checkpoint.RunRecord) error {
		key, ok := fields[r.Command]
		if !ok || (r.ExitCode != 0 && r.ExitCode != 2) {
			return nil
		}
		// Summaries come back from JSON: numbers are float64.
		if v, ok := r.Summary[key].(float64); ok && v > 0 {
			n = int64(v)
		}
		return nil
	})
	return n
}

// The summary fields that tell each command its expected total.
var (
	filesSyncTotal = map[string]string{"files sync": "files_scanned"}
	// verify files walks what the last sync or verification saw.
	verifyFilesTotal = map[string]string{"files sync": "files_scanned", "verify files": "files_checked"}
)
