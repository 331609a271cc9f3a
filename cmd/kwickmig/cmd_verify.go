package main

import "github.com/spf13/cobra"

// addVerifyCommands registers `kwickmig verify …`.
func addVerifyCommands(root *cobra.Command, g *globalOptions) {
}
