package main

import (
	"context"

	"github.com/spf13/cobra"
)

func newVerifyDBCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{Use: "db", Short: "not yet", RunE: func(cmd *cobra.Command, args []string) error { return runVerifyDB(cmd.Context(), g) }}
}

func runVerifyDB(ctx context.Context, g *globalOptions) error {
	return usageErrorf("verify db: not implemented yet")
}

func newVerifyRefsCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{Use: "refs", Short: "not yet", RunE: func(cmd *cobra.Command, args []string) error { return runVerifyDB(cmd.Context(), g) }}
}
