package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// version is set at build time for releases (-ldflags "-X main.version=v1.2.3");
// otherwise the VCS revision Go embeds in the binary identifies the build.
var version = "dev"

// versionString names the release, the commit and the Go version: what a
// run record or a bug report needs to say which kwickmig ran.
func versionString() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, when string
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			v += " (" + rev
			if dirty {
				v += ", modified"
			}
			if when != "" {
				v += ", " + when
			}
			v += ")"
		}
	}
	return v + " " + runtime.Version()
}

// strictGroups makes every command that only groups others (files, db,
// db capture, verify) refuse an unknown subcommand with exit 1 and a
// suggestion: `kwickmig files snyc` at 3 a.m. must not print help and exit
// 0 as if it had synced.
func strictGroups(c *cobra.Command) {
	for _, sub := range c.Commands() {
		strictGroups(sub)
	}
	if !c.HasSubCommands() || c.Run != nil || c.RunE != nil {
		return
	}
	c.Args = cobra.ArbitraryArgs
	c.SuggestionsMinimumDistance = 2
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += " (did you mean " + strings.Join(s, ", ") + "?)"
		}
		return usageErrorf("%s; run '%s --help' for the commands", msg, cmd.CommandPath())
	}
}
