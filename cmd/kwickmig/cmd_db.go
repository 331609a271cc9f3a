package main

import "github.com/spf13/cobra"

// addDBCommands registers the `kwickmig db …` subcommands: the bulk side
// (copy, export, import) and the change-capture side (capture, final-delta,
// import-delta).
func addDBCommands(db *cobra.Command, g *globalOptions) {
	addDBCopyCommands(db, g)
	addDBDeltaCommands(db, g)
}
