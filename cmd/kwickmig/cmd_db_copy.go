package main

import "github.com/spf13/cobra"

// addDBCopyCommands registers db copy, db export and db import.
func addDBCopyCommands(db *cobra.Command, g *globalOptions) {
}
