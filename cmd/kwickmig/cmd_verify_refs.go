package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/pgutil"
	"github.com/kwick/kwickmig/internal/report"
	"github.com/kwick/kwickmig/internal/verify"
)

// VerifyRefsOptions are the flags of `kwickmig verify refs`.
type VerifyRefsOptions struct {
	Source      string
	Query       string
	Dst         string
	Concurrency int
	MaxListed   int
	Report      string
	Checkpoint  string
	S3          s3Options
}

func (o *VerifyRefsOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.Source, "source", "", "database holding the references (default $KWICKMIG_SOURCE_URL)")
	f.StringVar(&o.Query, "query", "", "SQL whose first column is a file key: a path relative to --dst, as files sync maps the tree")
	f.StringVar(&o.Dst, "dst", "", "destination s3://BUCKET[/PREFIX]")
	f.IntVar(&o.Concurrency, "concurrency", 8, "S3 list requests in flight (top-level key ranges listed in parallel)")
	f.IntVar(&o.MaxListed, "max-listed", 1000, "missing and unreferenced keys listed (counts are always complete)")
	f.StringVar(&o.Report, "report", "", "write the result as JSON to this file")
	f.StringVar(&o.Checkpoint, "checkpoint", "", "checkpoint that receives the run record, used if it exists (default: db.db in the --state directory)")
	o.S3.AddFlags(f)
	// The names before #12's conventions.
	flagAliases(cmd, map[string]string{"source-db": "source", "list-jobs": "concurrency"})
}

func newVerifyRefsCommand(g *globalOptions) *cobra.Command {
	o := &VerifyRefsOptions{}
	cmd := &cobra.Command{
		Use:   "refs [--source URL] --query SQL --dst s3://BUCKET[/PREFIX]",
		Short: "Check that every file key the database references exists in the bucket; count unreferenced objects",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, args []string) error { return runVerifyRefs(cmd.Context(), o, g) },
	}
	o.AddFlags(cmd)
	return cmd
}

func (o *VerifyRefsOptions) validate() error {
	if o.Source == "" {
		o.Source = os.Getenv("KWICKMIG_SOURCE_URL")
	}
	switch {
	case o.Source == "":
		return usageErrorf("--source is required (or $KWICKMIG_SOURCE_URL)")
	case o.Query == "":
		return usageErrorf("--query is required (e.g. 'SELECT file_key FROM receipts')")
	case o.Dst == "":
		return usageErrorf("--dst is required (s3://BUCKET[/PREFIX])")
	case o.Concurrency < 1 || o.Concurrency > 256:
		return usageErrorf("--concurrency %d: want 1..256", o.Concurrency)
	}
	return nil
}

func runVerifyRefs(ctx context.Context, o *VerifyRefsOptions, g *globalOptions) error {
	started := time.Now()
	if err := o.validate(); err != nil {
		return err
	}
	var err error
	if o.Source, err = g.connString(o.Source); err != nil {
		return err
	}
	store, err := o.S3.open(ctx, o.Dst, o.Concurrency, 0, objstore.NewPacer(o.S3.MaxRPS))
	if err != nil {
		return err
	}
	conn, err := pgutil.Connect(ctx, pgutil.Source, o.Source)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	cp, err := openVerifyCheckpoint(g, o.Checkpoint)
	if err != nil {
		return err
	}
	if cp != nil {
		defer cp.Close()
	}
	res, runErr := verify.VerifyRefs(ctx, conn, store, verify.RefsOptions{
		Query: o.Query, Prefix: store.Prefix(), ListJobs: o.Concurrency, MaxListed: o.MaxListed,
	})
	summary := map[string]any{"query": o.Query, "destination": o.Dst}
	if res != nil {
		res.Destination = o.Dst
		printVerifyRefs(g, res)
		summary = map[string]any{"query": o.Query, "destination": o.Dst, "rows": res.Rows,
			"distinct_keys": res.DistinctKeys, "found": res.Found, "missing": res.Missing,
			"null_keys": res.NullKeys, "objects_listed": res.ObjectsListed,
			"unreferenced_objects": res.Unreferenced, "duration_seconds": res.DurationSeconds}
	}
	if runErr == nil && !res.OK() {
		runErr = &partialError{msg: fmt.Sprintf("verify refs: %s (listed above%s)",
			nounCount(res.Missing, "referenced key has no object", "referenced keys have no object"), reportHint(o.Report))}
	}
	return finishRun(ctx, g, runEnd{command: "verify refs", started: started, report: o.Report, cp: cp, result: res,
		summary: summary, secrets: []string{o.Source}, noRecord: cp == nil}, runErr)
}

func printVerifyRefs(g *globalOptions, r *verify.RefsResult) {
	w := g.stdout
	fmt.Fprintf(w, "verify refs: %s -> %s\n", r.Query, r.Destination)
	report.Table(w, [][]string{
		{"rows", fmt.Sprint(r.Rows)},
		{"distinct keys", fmt.Sprintf("%d (%d duplicate references, %d NULL)", r.DistinctKeys, r.DuplicateRefs, r.NullKeys)},
		{"found", fmt.Sprint(r.Found)},
		{"missing", fmt.Sprint(r.Missing)},
		{"objects listed", fmt.Sprint(r.ObjectsListed)},
		{"unreferenced objects", fmt.Sprint(r.Unreferenced)},
		{"duration", fmt.Sprintf("%.1fs", r.DurationSeconds)},
	})
	for _, k := range r.MissingKeys {
		fmt.Fprintf(w, "MISSING %s\n", report.Quote(k))
	}
	for _, k := range r.UnreferencedKeys {
		fmt.Fprintf(w, "UNREFERENCED %s\n", report.Quote(k))
	}
	if r.NotListed > 0 {
		fmt.Fprintf(w, "... and %d more keys (--max-listed)\n", r.NotListed)
	}
	if r.OK() {
		fmt.Fprintln(w, "OK: every referenced file is in the bucket")
	}
}
