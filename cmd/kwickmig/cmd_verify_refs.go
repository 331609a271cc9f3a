package main

import (
	"context"

	"github.com/spf13/cobra"
)

func newVerifyRefsCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{Use: "refs", Short: "not yet", RunE: func(cmd *cobra.Command, args []string) error { return runVerifyRefs(cmd.Context(), g) }}
}

func runVerifyRefs(ctx context.Context, g *globalOptions) error {
	return usageErrorf("verify refs: not implemented yet")
}
