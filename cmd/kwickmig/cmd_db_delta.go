package main

import "github.com/spf13/cobra"

// addDBDeltaCommands registers db capture, db final-delta and db import-delta.
func addDBDeltaCommands(db *cobra.Command, g *globalOptions) {
}
