package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// The migration state directory (--state, $KWICKMIG_STATE, default
// ./kwickmig-state) holds one checkpoint file per kind of work, so the
// files sync loop and the database commands run at the same time (a bbolt
// file has one writer) and `kwickmig report` finds them all:
//
//	files.db  files sync (and --rebuild-checkpoint), verify files
//	db.db     db copy/export/import, db capture *, db final-delta,
//	          db import-delta, verify db, verify refs
//
// A command's --checkpoint FILE still overrides its file.
const (
	defaultStateDir = "kwickmig-state"
	stateEnv        = "KWICKMIG_STATE"
	// legacyCheckpoint is where releases before the state directory wrote
	// when --checkpoint was not given.
	legacyCheckpoint = "kwickmig.db"
)

// addStateFlag registers the global --state flag.
func addStateFlag(root *cobra.Command, g *globalOptions) {
	root.PersistentFlags().StringVar(&g.StateDir, "state", "", "migration state `DIR`: one checkpoint file per kind of work (files.db, db.db), which report reads together (default $"+stateEnv+", else ./"+defaultStateDir+")")
}

// stateKind is the checkpoint file a command uses in the state directory
// ("files" or "db"), "" for commands without one.
func stateKind(cmd *cobra.Command) string {
	path := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
	switch {
	case path == "files sync", path == "verify files":
		return "files"
	case strings.HasPrefix(path, "db "), path == "verify db", path == "verify refs":
		return "db"
	}
	return ""
}

// stateFile is the checkpoint file of one kind of work.
func (g *globalOptions) stateFile(kind string) string {
	return filepath.Join(g.StateDir, kind+".db")
}

// resolveState runs before every command: it settles the state directory
// and, when the command's --checkpoint was not given, points it at the
// command's file there. Commands that write create the directory (0700:
// the checkpoint names every file and the run history); readers (report,
// verify, --dry-run) never do.
func (g *globalOptions) resolveState(cmd *cobra.Command) error {
	explicit := g.StateDir != ""
	if !explicit {
		g.StateDir = os.Getenv(stateEnv)
		explicit = g.StateDir != ""
	}
	if !explicit {
		g.StateDir = defaultStateDir
	}
	cpFlag := cmd.Flags().Lookup("checkpoint")
	kind := stateKind(cmd)
	if cpFlag != nil && kind != "" {
		defer func() {
			if p := cpFlag.Value.String(); p != "" {
				g.publishLive(strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" "), p)
			}
		}()
	}
	usesState := cpFlag != nil && !cpFlag.Changed && (kind != "" || cmd.Name() == "report")
	if !usesState {
		return nil
	}
	// Upgrading from a release without the state directory: its default
	// ./kwickmig.db may hold synced files or a copy in progress. Starting a
	// fresh state beside it would silently redo (and report) the migration
	// from nothing, and picking one kind for it would be a guess, so the
	// command refuses with the one-line fix until the operator has placed
	// it. Only for the implicit default: --state, $KWICKMIG_STATE or
	// --checkpoint are deliberate choices.
	if !explicit {
		if _, err := os.Stat(g.StateDir); errors.Is(err, fs.ErrNotExist) {
			if st, err := os.Stat(legacyCheckpoint); err == nil && st.Mode().IsRegular() {
				return usageErrorf("./%s is a checkpoint from an earlier kwickmig (before --state): move it into the state directory "+
					"as the file of the work it recorded (mkdir -m 0700 %s && mv %s %s/files.db, or db.db for database commands), or pass --checkpoint %s",
					legacyCheckpoint, defaultStateDir, legacyCheckpoint, defaultStateDir, legacyCheckpoint)
			}
		}
	}
	if kind == "" { // report: reads the directory itself
		return nil
	}
	file, err := shardStateFile(cmd, g.StateDir) // --shard K/N: files-shard-K-of-N.db
	if err != nil {
		return err
	}
	if file == "" {
		file = g.stateFile(kind)
	}
	if err := cpFlag.Value.Set(file); err != nil { // Value.Set: the flag stays "not given"
		return err
	}
	if writesState(cmd) {
		if err := os.MkdirAll(g.StateDir, 0o700); err != nil {
			return fmt.Errorf("state directory %s: %w", g.StateDir, err)
		}
	}
	return nil
}

// writesState: the command creates its checkpoint when it has none.
// verify commands only use one that exists; a dry run changes nothing.
func writesState(cmd *cobra.Command) bool {
	if strings.HasPrefix(cmd.CommandPath(), cmd.Root().Name()+" verify ") {
		return false
	}
	if f := cmd.Flags().Lookup("dry-run"); f != nil && f.Value.String() == "true" {
		return false
	}
	return true
}
