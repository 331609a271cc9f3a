package main

import "github.com/spf13/cobra"

// addDBCommands registers the `kwickmig db …` subcommands.
func addDBCommands(db *cobra.Command, g *globalOptions) {
}
