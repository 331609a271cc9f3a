package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/kwick/kwickmig/internal/cutover"
	"github.com/kwick/kwickmig/internal/pgdelta"
	"github.com/kwick/kwickmig/internal/pgutil"
)

// ReportOptions are the flags of `kwickmig report`.
type ReportOptions struct {
	Checkpoints []string
	RequireGo   bool
	HTML        string
	JSON        bool
	Source      string
	NoSource    bool
}

func (o *ReportOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringArrayVar(&o.Checkpoints, "checkpoint", nil, "checkpoint `FILE` to report on, opened read-only (repeatable: the files are merged; default: every *.db in the --state directory)")
	f.BoolVar(&o.RequireGo, "require-go", false, "exit 2 when the verdict is NO-GO (for scripts; the report is printed either way)")
	f.StringVar(&o.HTML, "html", "", "also write a self-contained HTML page (tables and a throughput chart) to this file")
	f.BoolVar(&o.JSON, "json", false, "print JSON instead of text (for tooling)")
	f.StringVar(&o.Source, "source", "", "source database, to read the live change-capture backlog (default $KWICKMIG_SOURCE_URL)")
	f.BoolVar(&o.NoSource, "offline", false, "do not connect to the source; use the last recorded backlog")
}

// addReportCommand registers `kwickmig report`.
func addReportCommand(root *cobra.Command, g *globalOptions) {
	o := &ReportOptions{}
	cmd := &cobra.Command{
		Use:   "report [--html FILE] [--json]",
		Short: "Print the whole migration's state (every checkpoint in the --state directory) with a GO / NO-GO verdict",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, args []string) error { return runReport(cmd.Context(), o, g) },
	}
	o.AddFlags(cmd)
	root.AddCommand(cmd)
}

func runReport(ctx context.Context, o *ReportOptions, g *globalOptions) error {
	paths := o.Checkpoints
	if len(paths) == 0 {
		var err error
		if paths, err = stateCheckpoints(g.StateDir); err != nil {
			return err
		}
	}
	var inputs []*cutover.Input
	var running []cutover.Running
	for _, p := range paths {
		in, run, err := readReportInput(p)
		if err != nil {
			return err
		}
		inputs = append(inputs, in)
		if run != nil {
			running = append(running, *run)
		}
	}
	rep := cutover.FromInput(cutover.Merge(inputs...), liveBacklog(ctx, o, g), running)
	if o.HTML != "" {
		if err := rep.WriteHTMLFile(o.HTML); err != nil {
			return err
		}
	}
	if o.JSON {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.WriteText(g.stdout)
		if o.HTML != "" {
			fmt.Fprintf(g.stdout, "\nHTML report: %s\n", o.HTML)
		}
	}
	if o.RequireGo && !rep.Go {
		return &partialError{msg: fmt.Sprintf("%s (--require-go)", rep.VerdictLine())}
	}
	return nil
}

// liveBacklog reads the capture backlog from the source, if one is
// configured; any problem only costs the live figure (the recorded one is
// shown instead).
func liveBacklog(ctx context.Context, o *ReportOptions, g *globalOptions) *cutover.Backlog {
	url := o.Source
	if url == "" {
		url = os.Getenv("KWICKMIG_SOURCE_URL")
	}
	if url == "" || o.NoSource {
		return nil
	}
	url, err := g.connString(url)
	if err != nil {
		g.logger.Warn("live capture backlog not read", "err", err)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := pgutil.Connect(ctx, pgutil.Source, url)
	if err != nil {
		g.logger.Warn("live capture backlog not read", "err", err)
		return nil
	}
	defer conn.Close(context.Background())
	st, err := pgdelta.CaptureStatus(ctx, conn)
	if err != nil || !st.Installed {
		if err != nil {
			g.logger.Warn("live capture backlog not read", "err", pgutil.RedactErr(err, url))
		}
		return nil
	}
	return &cutover.Backlog{Rows: st.Rows, Bytes: st.Bytes, OldestAge: st.OldestAge, AsOf: time.Now().UTC(), Live: true}
}
