package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/objstore/s3store"
	"github.com/kwick/kwickmig/internal/pgcopy"
	"github.com/kwick/kwickmig/internal/report"
)

// DBCopyOptions are the flags of db copy, db export and db import.
type DBCopyOptions struct {
	Source          string
	Target          string
	Location        string // --out (export) or --in (import)
	Jobs            int
	IndexJobs       int
	IndexWorkers    int
	WorkMem         string
	Tables          []string
	ExcludeTables   []string
	SchemaOnly      bool
	DataOnly        bool
	SplitLargerThan string
	Checkpoint      string
	Resume          bool
	Report          string
	NoAnalyze       bool
	NoPrivileges    bool
	Owners          bool
	S3              s3Options // export/import to s3://
	Metrics         metricsOptions
}

// AddFlags registers the flags a command of the given kind ("copy",
// "export", "import") takes.
func (o *DBCopyOptions) AddFlags(cmd *cobra.Command, kind string) {
	f := cmd.Flags()
	if kind != "import" {
		f.StringVar(&o.Source, "source", "", "source database URL or keyword string (default $KWICKMIG_SOURCE_URL)")
		f.StringArrayVar(&o.Tables, "table", nil, "copy only this table (schema.table, or table when one schema has it; parts may be \"quoted\"; repeatable)")
		f.StringArrayVar(&o.ExcludeTables, "exclude-table", nil, "leave this table out (schema.table, or table when one schema has it; repeatable)")
		f.Var(newSizeText(&o.SplitLargerThan, "4GiB", splitSize), "split-larger-than", "split tables larger than this into parallel page ranges (e.g. 4GiB, 512MiB; 0 = never)")
	}
	if kind != "export" {
		f.StringVar(&o.Target, "target", "", "target database URL or keyword string (default $KWICKMIG_TARGET_URL)")
		f.IntVar(&o.IndexJobs, "index-jobs", pgcopy.DefaultIndexJobs, "database connections building indexes and constraints on the target, in parallel")
		f.Var(newSizeText(&o.WorkMem, pgcopy.DefaultMaintenanceWorkMem, pgMemorySize), "maintenance-work-mem", "maintenance_work_mem of the index builds and foreign key checks on the target (e.g. 16MiB, 1GiB; \"server\" = the server's setting)")
		f.IntVar(&o.IndexWorkers, "index-workers", 0, "the target's parallel workers inside each index build and foreign key check (-1 = the server's setting)")
		f.BoolVar(&o.NoAnalyze, "no-analyze", false, "skip ANALYZE on the target at the end")
		f.BoolVar(&o.Resume, "resume", false, "continue an interrupted run recorded in the checkpoint")
	}
	switch kind {
	case "export":
		f.StringVar(&o.Location, "out", "", "directory or s3://bucket/prefix to write the export to")
	case "import":
		f.StringVar(&o.Location, "in", "", "directory or s3://bucket/prefix holding an export")
	}
	if kind != "copy" {
		o.S3.AddFlags(f)
	}
	f.BoolVar(&o.NoPrivileges, "no-privileges", false, "leave GRANTs and default privileges out (by default they are copied, and roles they name must exist on the target)")
	if kind != "import" {
		f.BoolVar(&o.Owners, "owners", false, "give objects their source owners (the roles must exist on the target; default: the migrating role owns everything)")
	}
	f.IntVar(&o.Jobs, "jobs", pgcopy.DefaultJobs, "database connections: parallel COPY streams (one connection each on the source and the target)")
	f.BoolVar(&o.SchemaOnly, "schema-only", false, "copy only the schema")
	f.BoolVar(&o.DataOnly, "data-only", false, "copy only the data (the schema must exist on the target)")
	f.StringVar(&o.Checkpoint, "checkpoint", "", "checkpoint file (default: db.db in the --state directory)")
	f.StringVar(&o.Report, "report", "", "write the run's report as JSON to this file")
	o.Metrics.AddFlags(f)
	cmd.MarkFlagsMutuallyExclusive("schema-only", "data-only")
}

// addDBCopyCommands registers db copy, db export and db import.
func addDBCopyCommands(db *cobra.Command, g *globalOptions) {
	var copyOpts, exportOpts, importOpts DBCopyOptions
	copyCmd := &cobra.Command{
		Use:   "copy --source URL --target URL",
		Short: "Copy the database to the target as of one consistent snapshot",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return copyOpts.Metrics.run(cmd.Context(), "db copy", func() error { return runDBCopy(cmd.Context(), copyOpts, g) })
		},
	}
	copyOpts.AddFlags(copyCmd, "copy")
	exportCmd := &cobra.Command{
		Use:   "export --source URL --out DIR|s3://BUCKET/PREFIX",
		Short: "Export the database as compressed COPY files and a manifest",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return exportOpts.Metrics.run(cmd.Context(), "db export", func() error { return runDBExport(cmd.Context(), exportOpts, g) })
		},
	}
	exportOpts.AddFlags(exportCmd, "export")
	importCmd := &cobra.Command{
		Use:   "import --target URL --in DIR|s3://BUCKET/PREFIX",
		Short: "Import an export made by db export, checking every file's checksum",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return importOpts.Metrics.run(cmd.Context(), "db import", func() error { return runDBImport(cmd.Context(), importOpts, g) })
		},
	}
	importOpts.AddFlags(importCmd, "import")
	db.AddCommand(copyCmd, exportCmd, importCmd)
}

// pgMemory is a PostgreSQL memory setting as SET accepts it.
var pgMemory = regexp.MustCompile(`^[0-9]+ ?(kB|MB|GB|TB)?$`)

// libOptions validates the flags and turns them into pgcopy.Options.
func (o DBCopyOptions) libOptions(g *globalOptions, kind string) (pgcopy.Options, error) {
	po := pgcopy.Options{Jobs: o.Jobs, IndexJobs: o.IndexJobs, IndexWorkers: o.IndexWorkers, MaintenanceWorkMem: o.WorkMem, Tables: o.Tables, ExcludeTables: o.ExcludeTables,
		SchemaOnly: o.SchemaOnly, DataOnly: o.DataOnly, Checkpoint: o.Checkpoint, Resume: o.Resume,
		NoAnalyze: o.NoAnalyze, NoPrivileges: o.NoPrivileges, Owners: o.Owners, Location: o.Location, Logger: g.logger}
	if o.Jobs < 1 || (kind != "export" && o.IndexJobs < 1) {
		return po, usageErrorf("--jobs and --index-jobs must be at least 1")
	}
	if kind != "export" && o.WorkMem != "" && o.WorkMem != "server" && !pgMemory.MatchString(o.WorkMem) {
		return po, usageErrorf("--maintenance-work-mem %q: want a size such as 16MB or 1GB (units kB, MB, GB), or \"server\"", o.WorkMem)
	}
	if o.IndexWorkers < -1 || o.IndexWorkers > 64 {
		return po, usageErrorf("--index-workers %d: want -1 (the server's setting) or 0..64", o.IndexWorkers)
	}
	if kind != "import" {
		po.SourceURL = firstNonEmpty(o.Source, os.Getenv("KWICKMIG_SOURCE_URL"))
		if po.SourceURL == "" {
			return po, usageErrorf("db %s: --source (or KWICKMIG_SOURCE_URL) is required", kind)
		}
		var err error
		if po.SourceURL, err = g.connString(po.SourceURL); err != nil {
			return po, err
		}
		split, err := pgcopy.ParseSize(o.SplitLargerThan)
		if err != nil {
			return po, usageErrorf("--split-larger-than: %v", err)
		}
		po.SplitLargerThan = split
	}
	if kind != "export" {
		po.TargetURL = firstNonEmpty(o.Target, os.Getenv("KWICKMIG_TARGET_URL"))
		if po.TargetURL == "" {
			return po, usageErrorf("db %s: --target (or KWICKMIG_TARGET_URL) is required", kind)
		}
		var err error
		if po.TargetURL, err = g.connString(po.TargetURL); err != nil {
			return po, err
		}
	}
	if kind != "copy" {
		if strings.TrimSpace(o.Location) == "" {
			flag := map[string]string{"export": "--out", "import": "--in"}[kind]
			return po, usageErrorf("db %s: %s DIR|s3://BUCKET/PREFIX is required", kind, flag)
		}
		if (o.S3.ClientCert == "") != (o.S3.ClientKey == "") {
			return po, usageErrorf("--client-cert and --client-key go together")
		}
		po.S3 = s3store.Options{EndpointURL: o.S3.EndpointURL, Region: o.S3.Region, Profile: o.S3.Profile,
			CABundle: o.S3.CABundle, ClientCert: o.S3.ClientCert, ClientKey: o.S3.ClientKey,
			RequestTimeout: o.S3.RequestTimeout, Pacer: objstore.NewPacer(o.S3.MaxRPS)}
	}
	if f, ok := g.stderr.(*os.File); ok && !g.Quiet && term.IsTerminal(int(f.Fd())) {
		po.Progress = g.stderr
		// pgcopy draws its own bar (bytes against the plan's total, with
		// an ETA); the meter only keeps the figures for Snapshot.
		po.Meter = report.NewSpinner(io.Discard, nil, kind+" progress", 10)
	} else {
		// A progress line every 10 s, with total and ETA.
		po.Meter = g.spinner(kind+" progress", 10)
	}
	if m := o.Metrics.srv.DBCopy(); m != nil { // --metrics-addr
		po.Observer = m
		o.Metrics.s3(po.S3.Pacer)
		o.Metrics.captureBacklog(po.SourceURL)
	}
	return po, nil
}

func runDBCopy(ctx context.Context, o DBCopyOptions, g *globalOptions) error {
	started := time.Now()
	po, err := o.libOptions(g, "copy")
	if err != nil {
		return err
	}
	res, err := pgcopy.Copy(ctx, po)
	return finishDBCommand(ctx, "db copy", started, po, res, err, o.Report, g)
}

func runDBExport(ctx context.Context, o DBCopyOptions, g *globalOptions) error {
	started := time.Now()
	po, err := o.libOptions(g, "export")
	if err != nil {
		return err
	}
	res, err := pgcopy.Export(ctx, po)
	return finishDBCommand(ctx, "db export", started, po, res, err, o.Report, g)
}

func runDBImport(ctx context.Context, o DBCopyOptions, g *globalOptions) error {
	started := time.Now()
	po, err := o.libOptions(g, "import")
	if err != nil {
		return err
	}
	res, err := pgcopy.Import(ctx, po)
	return finishDBCommand(ctx, "db import", started, po, res, err, o.Report, g)
}

// finishDBCommand prints the summary, writes the report and records the
// run, also after a failure (the report then shows how far the run got and
// why it stopped). A run that never opened its checkpoint (res is nil) is
// not recorded: it would create one where none was meant to be.
func finishDBCommand(ctx context.Context, command string, started time.Time, po pgcopy.Options, res *pgcopy.Result, err error, report string, g *globalOptions) error {
	if res != nil && err == nil {
		pgcopy.WriteSummary(g.stdout, res)
	}
	if err == nil && res != nil && len(res.Failures) > 0 {
		err = &partialError{msg: fmt.Sprintf("%s finished with %d failure(s), first: %s", res.Command, len(res.Failures), res.Failures[0])}
	}
	e := runEnd{command: command, started: started, report: report, secrets: []string{po.SourceURL, po.TargetURL}, noRecord: res == nil}
	if res != nil {
		e.started, e.result, e.summary, e.cpPath = res.Started, res, res.Summary(), po.Checkpoint
	}
	return finishRun(ctx, g, e, err)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
