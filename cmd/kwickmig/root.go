package main

import (
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/report"
)

// globalOptions are flags every command shares.
type globalOptions struct {
	LogFormat string // text|json
	LogLevel  string
	Quiet     bool // -q: no progress, no info logs; summaries and errors only
	logger    *slog.Logger
	stdout    io.Writer
	stderr    io.Writer
	aws       awsOptions // --region, --profile (secretrefs.go)

	StateDir string    // --state, see state.go
	live     liveState // progress for the live file, see live.go
}

func newRootCommand() *cobra.Command {
	return newRootCommandIO(os.Stdout, os.Stderr)
}

// newRootCommandIO builds the command tree writing to the given streams
// (tests capture them).
func newRootCommandIO(stdout, stderr io.Writer) *cobra.Command {
	g := &globalOptions{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "kwickmig",
		Short:         "Move receipts to S3 and PostgreSQL to Aurora, and prove nothing was lost",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			g.aws.setupAWS(cmd)
			if err := g.setup(); err != nil {
				return err
			}
			return g.resolveState(cmd)
		},
	}
	root.PersistentFlags().StringVar(&g.LogFormat, "log-format", "text", "log format: text or json")
	root.PersistentFlags().StringVar(&g.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	addAWSFlags(root, &g.aws)
	addStateFlag(root, g)
	root.PersistentFlags().BoolVarP(&g.Quiet, "quiet", "q", false, "no progress line or progress logs: print the summary, warnings and errors only (for cron and CI logs)")

	files := &cobra.Command{Use: "files", Short: "Copy the receipt file tree to S3"}
	files.AddCommand(newFilesSyncCommand(g))
	root.AddCommand(files)

	db := &cobra.Command{Use: "db", Short: "Copy a PostgreSQL database and apply the final delta"}
	addDBCommands(db, g)
	root.AddCommand(db)
	addVerifyCommands(root, g)
	addReportCommand(root, g)
	root.Version = versionString()
	checkpoint.ProgramVersion = root.Version
	root.SetVersionTemplate("kwickmig {{.Version}}\n")
	strictGroups(root)
	return root
}

// spinner is the progress line of a long command; with --quiet it shows
// and logs nothing.
func (g *globalOptions) spinner(description string, logEvery int) *report.Spinner {
	if progressLogEvery > 0 {
		logEvery = progressLogEvery
	}
	if g.Quiet {
		return report.NewSpinner(io.Discard, nil, description, logEvery)
	}
	return report.NewSpinner(g.stderr, g.logger, description, logEvery)
}

func (g *globalOptions) setup() error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.LogLevel)); err != nil {
		return usageErrorf("--log-level %q: want debug, info, warn or error", g.LogLevel)
	}
	if g.Quiet && level < slog.LevelWarn {
		level = slog.LevelWarn
	}
	opts := &slog.HandlerOptions{Level: level}
	switch g.LogFormat {
	case "text":
		g.logger = slog.New(slog.NewTextHandler(g.stderr, opts))
	case "json":
		g.logger = slog.New(slog.NewJSONHandler(g.stderr, opts))
	default:
		return usageErrorf("--log-format %q: want text or json", g.LogFormat)
	}
	return nil
}
