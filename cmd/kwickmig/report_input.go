package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/cutover"
)

// reportLockWait is how long report waits for a checkpoint's lock before it
// takes the running command's live file instead: a writer holds the lock
// for its whole run, so waiting longer only delays the report.
const reportLockWait = 300 * time.Millisecond

// stateCheckpoints lists the checkpoint files of the state directory.
func stateCheckpoints(dir string) ([]string, error) {
	paths, err := filepath.Glob(filepath.Join(filepath.Clean(dir), "*.db"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		st, err := os.Stat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("state directory %s does not exist: give the --state (or %s) the commands used, or --checkpoint FILE", dir, stateEnv)
		case err == nil && !st.IsDir():
			return nil, fmt.Errorf("--state %s is a file, not a state directory (to report on one checkpoint file: --checkpoint %s)", dir, dir)
		}
		return nil, fmt.Errorf("state directory %s holds no checkpoint (*.db): give the --state (or %s) the commands used, or --checkpoint FILE", dir, stateEnv)
	}
	return paths, nil
}

// readReportInput reads one checkpoint's report data. A file locked by a
// running command is read from that command's live file instead (its data
// as of its start), and the command is returned as running. A live file
// beside a file whose lock is free is left over from a killed run: ignored.
func readReportInput(path string) (*cutover.Input, *cutover.Running, error) {
	cp, err := checkpoint.OpenReadOnlyWait(path, reportLockWait)
	if err == nil {
		defer cp.Close()
		in, err := cutover.ReadInput(cp)
		return in, nil, err
	}
	if !errors.Is(err, checkpoint.ErrInUse) {
		return nil, nil, err
	}
	run := &cutover.Running{Checkpoint: path}
	in := &cutover.Input{Checkpoints: []string{path}}
	// The holder writes its live file right after taking the lock: a
	// report in that instant waits for it briefly.
	var live *checkpoint.Live
	for i := 0; i < 10; i++ {
		if live, err = checkpoint.ReadLive(path); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if live != nil {
		run.Command, run.PID, run.Started, run.Updated, run.Progress = live.Command, live.PID, live.Started, live.Updated, live.Progress
		if len(live.ReportInput) > 0 {
			var li cutover.Input
			if json.Unmarshal(live.ReportInput, &li) == nil {
				li.Checkpoints = []string{path}
				in = &li
			}
		}
	}
	return in, run, nil
}
