package main

import (
	"errors"
	"fmt"
	"os"

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

func nounCount(n int64, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
