package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/kwick/kwickmig/internal/checkpoint"
)

// addVerifyCommands registers `kwickmig verify …`. Every verify command
// exits 0 when everything matches, 1 when it could not run, 2 when it found
// differences (listed, and in --report).
func addVerifyCommands(root *cobra.Command, g *globalOptions) {
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Prove that files and rows arrived intact (exit 0 all match, 1 could not run, 2 differences found)",
	}
	verify.AddCommand(newVerifyFilesCommand(g), newVerifyDBCommand(g), newVerifyRefsCommand(g))
	root.AddCommand(verify)
}

// openVerifyCheckpoint opens the checkpoint if it exists (verify never
// creates one) for verify db and verify refs, which only append their run
// record to it. One in use (a files sync running on the shared file) is left
// out with a warning: verification itself does not need it. A damaged one
// stops the run (one line, exit 1): nothing that opens a checkpoint passes
// over damage silently. verify files has its own, stricter opener.
func openVerifyCheckpoint(g *globalOptions, path string) (*checkpoint.DB, error) {
	if path == "" {
		return nil, nil
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	cp, err := checkpoint.Open(path)
	if errors.Is(err, checkpoint.ErrDamaged) {
		return nil, err
	}
	if err != nil {
		g.logger.Warn("checkpoint not used: this run is not recorded", "err", err)
		return nil, nil
	}
	return cp, nil
}

// recordVerifyRun appends the run to the checkpoint's history (for
// `kwickmig report`); a failure to do so is logged, not fatal.
func recordVerifyRun(g *globalOptions, cp *checkpoint.DB, command string, started time.Time, exit int, summary map[string]any) {
	if cp == nil {
		return
	}
	if err := cp.AppendRun(checkpoint.RunRecord{Command: command, Started: started, Finished: time.Now(),
		ExitCode: exit, Summary: summary}); err != nil {
		g.logger.Error("checkpoint run record", "err", err)
	}
}

// verifyExit maps a verify outcome to the exit code recorded in the run.
func verifyExit(runErr error, interrupted, differ bool) int {
	switch {
	case interrupted:
		return ExitInterrupted
	case runErr != nil:
		return ExitCannotRun
	case differ:
		return ExitPartial
	}
	return ExitOK
}

func nounCount(n int64, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
