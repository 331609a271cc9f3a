package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kwick/kwickmig/internal/report"
	"github.com/kwick/kwickmig/internal/verify"
)

// VerifyDBOptions are the flags of `kwickmig verify db`.
type VerifyDBOptions struct {
	Source      string
	Target      string
	Tables      []string
	Jobs        int
	SegmentRows int64
	MaxListed   int
	AllowEmpty  bool
	Report      string
	Checkpoint  string
	// Out and In: verification without a network path between the
	// databases (cmd_verify_db_manifest.go).
	Out string
	In  string
	S3  s3Options
}

func (o *VerifyDBOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.Source, "source", "", "source database URL or keyword string (default $KWICKMIG_SOURCE_URL)")
	f.StringVar(&o.Target, "target", "", "target database URL or keyword string (default $KWICKMIG_TARGET_URL)")
	f.StringArrayVar(&o.Tables, "table", nil, "verify only this table (schema.table, or table when one schema has it; repeatable)")
	f.IntVar(&o.Jobs, "jobs", 4, "segments checked in parallel (each uses one connection per database)")
	f.Int64Var(&o.SegmentRows, "segment-rows", 100_000, "rows per checksum segment (primary-key range)")
	f.IntVar(&o.MaxListed, "max-listed", 100, "differing rows listed per table (counts are always complete)")
	f.BoolVar(&o.AllowEmpty, "allow-empty", false, "accept two databases without tables as identical (refused by default: usually a wrong database name)")
	f.StringVar(&o.Report, "report", "", "write the result as JSON to this file")
	f.StringVar(&o.Checkpoint, "checkpoint", "", "checkpoint that receives the run record, used if it exists (default: db.db in the --state directory)")
	f.StringVar(&o.Out, "out", "", "write a manifest of the source (with --source, no --target) to this directory or s3://bucket/prefix, for a compare where the target is reachable")
	f.StringVar(&o.In, "in", "", "compare the target (with --target, no --source) with the manifest in this directory or s3://bucket/prefix")
	o.S3.AddFlags(f)
}

func newVerifyDBCommand(g *globalOptions) *cobra.Command {
	o := &VerifyDBOptions{}
	cmd := &cobra.Command{
		Use:   "db --source URL --target URL | --source URL --out DIR|s3://BUCKET/PREFIX | --target URL --in DIR|s3://BUCKET/PREFIX",
		Short: "Compare schema, rows (segment checksums, bisected to keys) and sequences of the two databases",
		Long: `Compare schema, privileges, rows (segment checksums, bisected to keys) and sequences of the two databases.

Where no network path joins them (the source only reachable from the old data center, the target only
inside the VPC): after writes have stopped, write a manifest of the source with --source URL --out
DIR|s3://BUCKET/PREFIX, then compare inside the VPC with --target URL --in DIR|s3://BUCKET/PREFIX. The
compare never connects to the source; its exit codes, output and --report are the direct verify's (changed
rows are named by key, their columns are not). Only a compare counts as a verification in kwickmig report.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runVerifyDB(cmd.Context(), o, g) },
	}
	o.AddFlags(cmd)
	return cmd
}

func (o *VerifyDBOptions) validate() error {
	if o.Source == "" {
		o.Source = os.Getenv("KWICKMIG_SOURCE_URL")
	}
	if o.Target == "" {
		o.Target = os.Getenv("KWICKMIG_TARGET_URL")
	}
	switch {
	case o.Source == "":
		return usageErrorf("--source is required (or $KWICKMIG_SOURCE_URL)")
	case o.Target == "":
		return usageErrorf("--target is required (or $KWICKMIG_TARGET_URL)")
	case o.Jobs < 1 || o.Jobs > 256:
		return usageErrorf("--jobs %d: want 1..256", o.Jobs)
	case o.SegmentRows < 2:
		return usageErrorf("--segment-rows %d: want at least 2", o.SegmentRows)
	}
	return nil
}

func runVerifyDB(ctx context.Context, o *VerifyDBOptions, g *globalOptions) error {
	started := time.Now()
	if o.Out != "" || o.In != "" {
		return runVerifyDBManifest(ctx, o, g, started)
	}
	if err := o.validate(); err != nil {
		return err
	}
	var err error
	if o.Source, err = g.connString(o.Source); err != nil {
		return err
	}
	if o.Target, err = g.connString(o.Target); err != nil {
		return err
	}
	cp, err := openVerifyCheckpoint(g, o.Checkpoint)
	if err != nil {
		return err
	}
	if cp != nil {
		defer cp.Close()
	}
	spin := g.spinner("verify db", 1)
	res, runErr := verify.VerifyDB(ctx, verify.DBOptions{
		Source: o.Source, Target: o.Target, Tables: o.Tables, Jobs: o.Jobs,
		SegmentRows: o.SegmentRows, MaxListed: o.MaxListed, AllowEmpty: o.AllowEmpty,
		Progress: func(done, total int) {
			spin.SetTotal(int64(total))
			spin.Update(int64(done), fmt.Sprintf("tables %d/%d", done, total), "tables_done", done, "tables", total)
			g.live.progressOf(int64(done), int64(total), "tables")
		},
	})
	spin.Done()
	if res != nil {
		printVerifyDB(g, res)
	}
	var summary map[string]any
	if res != nil {
		var missing, extra, changed int64
		for _, t := range res.Tables {
			missing, extra, changed = missing+t.Missing, extra+t.Extra, changed+t.Changed
		}
		summary = map[string]any{
			"source": res.Source, "target": res.Target, "tables_checked": res.TablesChecked,
			"tables_differ": res.TablesDiffer, "schema_differences": len(res.Schema),
			"sequences_behind": res.SequencesBehind, "rows_source": res.RowsSource, "rows_target": res.RowsTarget,
			"rows_missing": missing, "rows_extra": extra, "rows_changed": changed,
			"segments": res.Segments, "duration_seconds": res.DurationSeconds,
		}
	}
	end := runEnd{command: "verify db", started: started, report: o.Report, cp: cp, result: res, summary: summary,
		secrets: []string{o.Source, o.Target}, noRecord: cp == nil}
	return finishRun(ctx, g, end, verifyDBOutcome(res, runErr, o.Report))
}

// verifyDBOutcome is the run's error: why it could not run, or what differs.
func verifyDBOutcome(res *verify.DBResult, runErr error, reportPath string) error {
	if runErr != nil {
		return runErr
	}
	if !res.OK() {
		var parts []string
		if n := int64(len(res.Schema)); n > 0 {
			parts = append(parts, nounCount(n, "schema difference", "schema differences"))
		}
		if n := int64(res.TablesDiffer); n > 0 {
			parts = append(parts, nounCount(n, "table differs", "tables differ"))
		}
		if n := int64(res.SequencesBehind); n > 0 {
			parts = append(parts, nounCount(n, "sequence behind", "sequences behind"))
		}
		return &partialError{msg: "verify db: " + strings.Join(parts, ", ") + " (listed above" + reportHint(reportPath) + ")"}
	}
	return nil
}

func printVerifyDB(g *globalOptions, r *verify.DBResult) {
	w := g.stdout
	fmt.Fprintf(w, "verify db: %s -> %s\n", r.Source, r.Target)
	rows := [][]string{{"TABLE", "KEY", "SOURCE ROWS", "TARGET ROWS", "SEGMENTS", "MISSING", "EXTRA", "CHANGED", "RESULT"}}
	for _, t := range r.Tables {
		key := strings.Join(t.Key, ",")
		if key == "" {
			key = "(none: whole table)"
		}
		result := "ok"
		if t.Differs() {
			result = "DIFFERS"
		}
		rows = append(rows, []string{report.Quote(t.Table), key, fmt.Sprint(t.SourceRows), fmt.Sprint(t.TargetRows),
			fmt.Sprintf("%d/%d", t.SegmentsDiffer, t.Segments), fmt.Sprint(t.Missing), fmt.Sprint(t.Extra), fmt.Sprint(t.Changed), result})
	}
	report.Table(w, rows)
	for _, t := range r.Tables {
		for _, d := range t.Rows {
			line := fmt.Sprintf("%s %s: %s", strings.ToUpper(d.Kind), report.Quote(t.Table), report.Quote(d.Key))
			if len(d.Columns) > 0 {
				line += " (columns: " + strings.Join(d.Columns, ", ") + ")"
			}
			fmt.Fprintln(w, line)
		}
		if t.RowsNotListed > 0 {
			fmt.Fprintf(w, "... and %d more rows of %s (--max-listed)\n", t.RowsNotListed, report.Quote(t.Table))
		}
		if t.ChecksumDiffer && len(t.Key) == 0 {
			fmt.Fprintf(w, "CHECKSUM %s: contents differ (no key: %d rows only on the source, %d only on the target)\n",
				report.Quote(t.Table), t.Missing, t.Extra)
		}
	}
	for _, d := range r.Schema {
		fmt.Fprintf(w, "SCHEMA %s: %s\n", report.Quote(d.Table), d.Detail)
	}
	behind := 0
	for _, s := range r.Sequences {
		if !s.OK {
			behind++
			fmt.Fprintf(w, "SEQUENCE %s: %s\n", report.Quote(s.Sequence), s.Problem)
		}
	}
	fmt.Fprintf(w, "%d tables, %d rows on the source, %d on the target, %d segments, %d sequences (%d behind), %d schema differences, %.1fs\n",
		r.TablesChecked, r.RowsSource, r.RowsTarget, r.Segments, len(r.Sequences), behind, len(r.Schema), r.DurationSeconds)
	if r.OK() {
		fmt.Fprintln(w, "OK: every table, row and sequence matches")
	}
}
