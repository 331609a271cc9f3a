package main

import "github.com/spf13/cobra"

// addReportCommand registers `kwickmig report`.
func addReportCommand(root *cobra.Command, g *globalOptions) {
}
