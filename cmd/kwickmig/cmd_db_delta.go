package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/pgcopy"
	"github.com/kwick/kwickmig/internal/pgdelta"
	"github.com/kwick/kwickmig/internal/pgutil"
	"github.com/kwick/kwickmig/internal/report"
)

// addDBDeltaCommands registers db capture, db final-delta and db import-delta.
func addDBDeltaCommands(db *cobra.Command, g *globalOptions) {
	capture := &cobra.Command{Use: "capture", Short: "Install, inspect or remove change capture on the source"}
	capture.AddCommand(newCaptureInstallCommand(g), newCaptureStatusCommand(g), newCaptureRemoveCommand(g), newCaptureAddCommand(g))
	db.AddCommand(capture, newFinalDeltaCommand(g), newImportDeltaCommand(g))
}

// deltaCommon are the flags every delta command shares.
type deltaCommon struct {
	Source     string
	Target     string
	Report     string
	Checkpoint string
}

func (o *deltaCommon) addSource(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.Source, "source", "", "source database URL or keyword string (default $KWICKMIG_SOURCE_URL)")
}

func (o *deltaCommon) addTarget(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.Target, "target", "", "target database URL or keyword string (default $KWICKMIG_TARGET_URL)")
}

func (o *deltaCommon) addOutput(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.Report, "report", "", "write a JSON summary to this file")
	cmd.Flags().StringVar(&o.Checkpoint, "checkpoint", "", "checkpoint file the run is recorded in (default: db.db in the --state directory)")
}

// resolve fills --source/--target from the environment and checks presence.
func (o *deltaCommon) resolve(g *globalOptions, needSource, needTarget bool) error {
	if o.Source == "" {
		o.Source = os.Getenv("KWICKMIG_SOURCE_URL")
	}
	if o.Target == "" {
		o.Target = os.Getenv("KWICKMIG_TARGET_URL")
	}
	if needSource && o.Source == "" {
		return usageErrorf("--source is required (or set KWICKMIG_SOURCE_URL)")
	}
	if needTarget && o.Target == "" {
		return usageErrorf("--target is required (or set KWICKMIG_TARGET_URL)")
	}
	// Only what the command uses is resolved (each is an AWS request).
	var err error
	if needSource {
		if o.Source, err = g.connString(o.Source); err != nil {
			return err
		}
	}
	if needTarget {
		o.Target, err = g.connString(o.Target)
	}
	return err
}

// connect opens one side; a nil *pgx.Conn with nil error when url is "".
func deltaConnect(ctx context.Context, side pgutil.Side, url string) (*pgx.Conn, error) {
	if url == "" {
		return nil, nil
	}
	return pgutil.Connect(ctx, side, url)
}

func deltaClose(c *pgx.Conn) {
	if c != nil {
		c.Close(context.Background())
	}
}

// finish writes the JSON report, appends the run to the checkpoint and
// returns err. A checkpoint that cannot be opened (another kwickmig holds it)
// only costs the history entry: the delta's state lives in the databases.
func (o *deltaCommon) finish(ctx context.Context, g *globalOptions, command string, started time.Time, summary any, err error) error {
	fields := map[string]any{}
	if summary != nil {
		if data, merr := json.Marshal(summary); merr == nil {
			_ = json.Unmarshal(data, &fields)
		}
	}
	return finishRun(ctx, g, runEnd{command: command, started: started, report: o.Report, cpPath: o.Checkpoint,
		result: summary, summary: fields, secrets: []string{o.Source, o.Target}}, err)
}

// CaptureOptions are the flags of db capture install|status|remove|add.
type CaptureOptions struct {
	deltaCommon
	Exclude           []string
	AllowNoKey        bool
	LockTimeout       time.Duration
	PgDump            string
	StatementTriggers bool
}

func newCaptureInstallCommand(g *globalOptions) *cobra.Command {
	var opts CaptureOptions
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Create the change log and capture triggers on the source (before the bulk copy)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runCaptureInstall(cmd.Context(), opts, g) },
	}
	opts.addSource(cmd)
	opts.addOutput(cmd)
	cmd.Flags().StringArrayVar(&opts.Exclude, "exclude-table", nil, "do not capture this table (schema.table, or table when one schema has it; repeatable); exclude it from the bulk copy too")
	cmd.Flags().BoolVar(&opts.AllowNoKey, "allow-no-key", false, "also capture tables without a primary or unique not-null key (full-row matching: each update or delete scans the table)")
	cmd.Flags().DurationVar(&opts.LockTimeout, "lock-timeout", 10*time.Second, "give up if a table cannot be locked for trigger creation within this time")
	cmd.Flags().BoolVar(&opts.StatementTriggers, "statement-triggers", false, "capture plain tables by statement triggers (one log insert per statement: several times cheaper for statements changing many rows, dearer for one-row statements; partitioned and inherited tables keep row triggers)")
	return cmd
}

func newCaptureStatusCommand(g *globalOptions) *cobra.Command {
	var opts CaptureOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the capture backlog: rows, bytes, age of the oldest unapplied change",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runCaptureStatus(cmd.Context(), opts, g) },
	}
	opts.addSource(cmd)
	opts.addOutput(cmd)
	return cmd
}

func newCaptureRemoveCommand(g *globalOptions) *cobra.Command {
	var opts CaptureOptions
	cmd := &cobra.Command{
		Use:   "remove",
		Short: "Drop the capture triggers, the kwickmig schema (with its change log) and the capture role from the source; with --target, the target's delta bookkeeping too",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runCaptureRemove(cmd.Context(), opts, g) },
	}
	opts.addSource(cmd)
	cmd.Flags().StringVar(&opts.Target, "target", "", "also drop the kwickmig schema (applied rounds and batches) from this target database")
	opts.addOutput(cmd)
	cmd.Flags().DurationVar(&opts.LockTimeout, "lock-timeout", 10*time.Second, "give up if a table cannot be locked within this time")
	return cmd
}

// onSource runs one capture command: fn on a source connection, then the
// report and the checkpoint's run record.
func (opts CaptureOptions) onSource(ctx context.Context, g *globalOptions, command string, fn func(*pgx.Conn) (any, error)) error {
	if err := opts.resolve(g, true, false); err != nil {
		return err
	}
	started := time.Now()
	src, err := deltaConnect(ctx, pgutil.Source, opts.Source)
	if err != nil {
		return opts.finish(ctx, g, command, started, nil, err)
	}
	defer deltaClose(src)
	summary, err := fn(src)
	return opts.finish(ctx, g, command, started, summary, err)
}

func runCaptureInstall(ctx context.Context, opts CaptureOptions, g *globalOptions) error {
	return opts.onSource(ctx, g, "db capture install", func(src *pgx.Conn) (any, error) {
		res, err := pgdelta.Install(ctx, src, pgdelta.InstallOptions{Exclude: opts.Exclude, AllowNoKey: opts.AllowNoKey, LockTimeout: opts.LockTimeout, StatementTriggers: opts.StatementTriggers})
		if err != nil {
			return res, err
		}
		if res.Upgraded {
			fmt.Fprintf(g.stdout, "capture already installed on %s by an older kwickmig: its trigger functions were replaced (they now run as a NOLOGIN role that may only write the change log)\n", deltaPlural(len(res.Tables), "table"))
			return res, nil
		}
		if res.AlreadyInstalled {
			fmt.Fprintf(g.stdout, "capture already installed on %s; nothing changed\n", deltaPlural(len(res.Tables), "table"))
			return res, nil
		}
		fmt.Fprintf(g.stdout, "capture installed on %s: %s\n", deltaPlural(len(res.Tables), "table"), strings.Join(res.Tables, ", "))
		if len(res.NoKey) > 0 {
			fmt.Fprintf(g.stdout, "captured without a key (full-row matching): %s\n", strings.Join(res.NoKey, ", "))
		}
		if len(res.Excluded) > 0 {
			fmt.Fprintf(g.stdout, "not captured (--exclude-table): %s\n", strings.Join(res.Excluded, ", "))
		}
		fmt.Fprintln(g.stdout, "next: run the bulk copy (kwickmig db copy or db export); its snapshot becomes the delta baseline")
		return res, nil
	})
}

func runCaptureStatus(ctx context.Context, opts CaptureOptions, g *globalOptions) error {
	return opts.onSource(ctx, g, "db capture status", func(src *pgx.Conn) (any, error) {
		st, err := pgdelta.CaptureStatus(ctx, src)
		if err != nil {
			return st, err
		}
		if !st.Installed {
			fmt.Fprintln(g.stdout, "capture is not installed on the source")
			return st, nil
		}
		fmt.Fprintf(g.stdout, "capture installed %s on %s\n", st.InstalledAt, deltaPlural(st.Tables, "table"))
		since := fmt.Sprintf("since round %d", st.LastRound)
		if st.SinceInstall {
			since = "since install (no delta round yet; includes changes the bulk copy already holds)"
		}
		if st.Rows == 0 {
			fmt.Fprintf(g.stdout, "backlog %s: none\n", since)
		} else {
			fmt.Fprintf(g.stdout, "backlog %s: %d rows, %s, oldest change %s old\n", since, st.Rows, report.Bytes(st.Bytes), st.OldestAge)
		}
		if len(st.NewPartitions) > 0 {
			fmt.Fprintf(g.stdout, "new partitions (the next final-delta creates them on the target and copies their rows): %s\n", strings.Join(st.NewPartitions, ", "))
		}
		if len(st.Uncaptured) > 0 {
			fmt.Fprintf(g.stdout, "not captured (created after install): %s\n", strings.Join(st.Uncaptured, ", "))
		}
		if len(st.Drift) == 0 {
			fmt.Fprintln(g.stdout, "schema: unchanged since install")
			return st, nil
		}
		fmt.Fprintln(g.stdout, "schema drift since install; final-delta will refuse to run until it is undone:")
		for _, d := range st.Drift {
			fmt.Fprintln(g.stdout, "  "+d)
		}
		return st, &partialError{msg: fmt.Sprintf("source: schema drift since capture install: %s", strings.Join(st.Drift, ", "))}
	})
}

func runCaptureRemove(ctx context.Context, opts CaptureOptions, g *globalOptions) error {
	// --target is not read from $KWICKMIG_TARGET_URL here: dropping the
	// target's bookkeeping is asked for explicitly.
	target, err := g.connString(opts.Target)
	if err != nil {
		return err
	}
	return opts.onSource(ctx, g, "db capture remove", func(src *pgx.Conn) (any, error) {
		summary := map[string]any{}
		removed, err := pgdelta.Remove(ctx, src, opts.LockTimeout)
		summary["removed"] = removed
		if err != nil {
			return summary, err
		}
		if removed {
			fmt.Fprintln(g.stdout, "capture removed: triggers, functions, the kwickmig schema and the capture role dropped from the source")
		} else {
			fmt.Fprintln(g.stdout, "capture was not installed on the source; nothing to remove there")
		}
		if target == "" {
			return summary, nil
		}
		tgt, err := deltaConnect(ctx, pgutil.Target, target)
		if err != nil {
			return summary, err
		}
		defer deltaClose(tgt)
		removed, err = pgdelta.RemoveTarget(ctx, tgt, opts.LockTimeout)
		summary["target_removed"] = removed
		if err != nil {
			return summary, err
		}
		if removed {
			fmt.Fprintln(g.stdout, "target: kwickmig schema (applied rounds and batches) dropped")
		} else {
			fmt.Fprintln(g.stdout, "target: no kwickmig schema; nothing to remove there")
		}
		return summary, nil
	})
}

func newCaptureAddCommand(g *globalOptions) *cobra.Command {
	var opts CaptureOptions
	cmd := &cobra.Command{
		Use:   "add TABLE...",
		Short: "Bring tables created after install under capture; the next delta round creates them on the target with their rows",
		Long: `Each TABLE (schema.table, or table when one schema has it) is locked against
writers for a moment; in one snapshot its schema is read (pg_dump) and every
row it holds is logged as an insert, and its capture triggers are created.
The next final-delta (--target or --out, then import-delta) creates the table
on the target and applies those rows; later rounds carry its changes. With
--target the table is created on the target right away.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runCaptureAdd(cmd.Context(), opts, args, g) },
	}
	opts.addSource(cmd)
	opts.addOutput(cmd)
	cmd.Flags().StringVar(&opts.Target, "target", "", "also create the tables on this target database now")
	cmd.Flags().BoolVar(&opts.AllowNoKey, "allow-no-key", false, "also add tables without a primary or unique not-null key (full-row matching)")
	cmd.Flags().DurationVar(&opts.LockTimeout, "lock-timeout", 10*time.Second, "give up if a table cannot be locked within this time")
	cmd.Flags().StringVar(&opts.PgDump, "pg-dump", "", "pg_dump binary that reads the tables' schema (default: the newest installed)")
	return cmd
}

func runCaptureAdd(ctx context.Context, opts CaptureOptions, names []string, g *globalOptions) error {
	target, err := g.connString(opts.Target)
	if err != nil {
		return err
	}
	return opts.onSource(ctx, g, "db capture add", func(src *pgx.Conn) (any, error) {
		var major int
		if err := src.QueryRow(ctx, `SELECT current_setting('server_version_num')::int / 10000`).Scan(&major); err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
		dump := func(ctx context.Context, snap string, tables [][2]string) (string, error) {
			return pgcopy.TableDDL(ctx, opts.Source, opts.PgDump, major, snap, tables)
		}
		res, err := pgdelta.AddTables(ctx, src, names, pgdelta.AddOptions{AllowNoKey: opts.AllowNoKey, LockTimeout: opts.LockTimeout, DumpDDL: dump})
		if err != nil {
			return res, err
		}
		if len(res.Already) > 0 {
			fmt.Fprintf(g.stdout, "already captured: %s\n", strings.Join(res.Already, ", "))
		}
		if len(res.Added) == 0 {
			return res, nil
		}
		fmt.Fprintf(g.stdout, "capture added on %s: %s (%d rows logged for the next delta round)\n",
			deltaPlural(len(res.Added), "table"), strings.Join(res.Added, ", "), res.Rows)
		if target == "" {
			fmt.Fprintln(g.stdout, "next: final-delta (--target, or --out and import-delta) creates them on the target and copies their rows")
			return res, nil
		}
		tgt, err := deltaConnect(ctx, pgutil.Target, target)
		if err != nil {
			return res, err
		}
		defer deltaClose(tgt)
		if err := pgdelta.CreateAddedTables(ctx, src, tgt); err != nil {
			return res, err
		}
		fmt.Fprintln(g.stdout, "target: tables created; the next final-delta copies their rows")
		return res, nil
	})
}

// DeltaOptions are the flags of db final-delta and db import-delta.
type DeltaOptions struct {
	deltaCommon
	S3            s3Options // for s3:// --out / --in
	Out           string
	In            []string
	BatchRows     int
	SkipSequences bool
	LockTimeout   time.Duration
	NoRefreshMV   bool
	Metrics       metricsOptions
}

func newFinalDeltaCommand(g *globalOptions) *cobra.Command {
	var opts DeltaOptions
	cmd := &cobra.Command{
		Use:   "final-delta",
		Short: "Apply (--target) or export (--out) the changes captured since the bulk copy or the last round",
		Long: `Each run takes a new tick (a snapshot of the source's transactions) and applies
exactly the changes committed since the previous round, then sets every target
sequence to the source's value. Run it as often as you like during the day to
shrink the backlog, and once more after the application has stopped writing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return opts.Metrics.run(cmd.Context(), "db final-delta", func() error { return runFinalDelta(cmd.Context(), opts, g) })
		},
	}
	opts.addSource(cmd)
	opts.addTarget(cmd)
	opts.addOutput(cmd)
	cmd.Flags().StringVar(&opts.Out, "out", "", "write the round as numbered, checksummed batch files to DIR or s3://BUCKET/PREFIX instead of applying it")
	cmd.Flags().IntVar(&opts.BatchRows, "batch-rows", 5000, "changes per target transaction (and per batch file)")
	cmd.Flags().BoolVar(&opts.SkipSequences, "skip-sequences", false, "do not set the target's sequences")
	cmd.Flags().DurationVar(&opts.LockTimeout, "lock-timeout", 30*time.Second, "give up when a target lock is not granted within this time, naming the session that holds it")
	cmd.Flags().BoolVar(&opts.NoRefreshMV, "no-refresh-matviews", false, "leave the target's materialized views as they are (default: refresh those over changed tables)")
	opts.S3.AddFlags(cmd.Flags())
	opts.Metrics.AddFlags(cmd.Flags())
	return cmd
}

func newImportDeltaCommand(g *globalOptions) *cobra.Command {
	var opts DeltaOptions
	cmd := &cobra.Command{
		Use:   "import-delta",
		Short: "Apply batch files written by final-delta --out, in order, each exactly once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return opts.Metrics.run(cmd.Context(), "db import-delta", func() error { return runImportDelta(cmd.Context(), opts, g) })
		},
	}
	opts.addTarget(cmd)
	opts.addOutput(cmd)
	cmd.Flags().StringArrayVar(&opts.In, "in", nil, "DIR or s3://BUCKET/PREFIX written by final-delta --out (repeatable: rounds may sit in several locations)")
	cmd.Flags().BoolVar(&opts.SkipSequences, "skip-sequences", false, "do not set the target's sequences")
	cmd.Flags().DurationVar(&opts.LockTimeout, "lock-timeout", 30*time.Second, "give up when a target lock is not granted within this time, naming the session that holds it")
	cmd.Flags().BoolVar(&opts.NoRefreshMV, "no-refresh-matviews", false, "leave the target's materialized views as they are (default: refresh those over changed tables)")
	opts.S3.AddFlags(cmd.Flags())
	opts.Metrics.AddFlags(cmd.Flags())
	return cmd
}

func runFinalDelta(ctx context.Context, opts DeltaOptions, g *globalOptions) error {
	if opts.Out != "" && opts.Target != "" {
		return usageErrorf("give either --target or --out, not both")
	}
	if err := opts.resolve(g, true, opts.Out == ""); err != nil {
		return err
	}
	if opts.Out != "" {
		opts.Target = ""
	}
	if opts.BatchRows <= 0 {
		return usageErrorf("--batch-rows must be positive")
	}
	started := time.Now()
	src, err := deltaConnect(ctx, pgutil.Source, opts.Source)
	if err != nil {
		return opts.finish(ctx, g, "db final-delta", started, nil, err)
	}
	defer deltaClose(src)
	prog := newDeltaProgress(ctx, g, src, opts.Metrics.srv.DeltaRows(opts.Out != ""))
	defer prog.finish()
	popts := pgdelta.Options{BatchRows: opts.BatchRows, SkipSequences: opts.SkipSequences, LockTimeout: opts.LockTimeout, NoRefreshMatviews: opts.NoRefreshMV, Logger: g.logger,
		OnBatch: prog.onBatch}
	opts.Metrics.captureBacklog(opts.Source)
	var res pgdelta.Result
	if opts.Out != "" {
		dst, derr := openBatchStore(ctx, opts.Out, &opts.S3)
		if derr != nil {
			return opts.finish(ctx, g, "db final-delta", started, nil, derr)
		}
		res, err = pgdelta.Export(ctx, src, dst, popts)
	} else {
		tgt, cerr := deltaConnect(ctx, pgutil.Target, opts.Target)
		if cerr != nil {
			return opts.finish(ctx, g, "db final-delta", started, nil, cerr)
		}
		defer deltaClose(tgt)
		res, err = pgdelta.FinalDelta(ctx, src, tgt, popts)
	}
	prog.finish()
	printDeltaResult(g, res, opts.Out != "")
	return opts.finish(ctx, g, "db final-delta", started, res, err)
}

func runImportDelta(ctx context.Context, opts DeltaOptions, g *globalOptions) error {
	if err := opts.resolve(g, false, true); err != nil {
		return err
	}
	if len(opts.In) == 0 {
		return usageErrorf("--in is required")
	}
	started := time.Now()
	var stores []pgdelta.BatchStore
	for _, loc := range opts.In {
		st, err := openBatchStore(ctx, loc, &opts.S3)
		if err != nil {
			return opts.finish(ctx, g, "db import-delta", started, nil, err)
		}
		stores = append(stores, st)
	}
	in := pgdelta.Stores(stores...)
	tgt, err := deltaConnect(ctx, pgutil.Target, opts.Target)
	if err != nil {
		return opts.finish(ctx, g, "db import-delta", started, nil, err)
	}
	defer deltaClose(tgt)
	res, err := pgdelta.Import(ctx, tgt, in, pgdelta.Options{SkipSequences: opts.SkipSequences, LockTimeout: opts.LockTimeout, NoRefreshMatviews: opts.NoRefreshMV, Logger: g.logger,
		OnBatch: opts.Metrics.srv.DeltaRows(false)})
	printDeltaResult(g, res, false)
	return opts.finish(ctx, g, "db import-delta", started, res, err)
}

func printDeltaResult(g *globalOptions, res pgdelta.Result, exported bool) {
	verb := "applied"
	if exported {
		verb = "exported"
	}
	for _, r := range res.Rounds {
		switch {
		case r.Skipped:
			fmt.Fprintf(g.stdout, "round %d: already applied, skipped\n", r.Round)
		case exported:
			fmt.Fprintf(g.stdout, "round %d: %s %d changes in %d files (%s) in %.1fs\n", r.Round, verb, r.Rows, r.Files, report.Bytes(r.Bytes), r.Seconds)
		default:
			extra := ""
			if r.Resumed {
				extra = " (finished an interrupted round)"
			}
			fmt.Fprintf(g.stdout, "round %d: %s %d changes in %.1fs%s\n", r.Round, verb, r.Rows, r.Seconds, extra)
		}
	}
	if !exported && len(res.Rounds) > 0 {
		fmt.Fprintf(g.stdout, "sequences set: %d\n", res.Sequences)
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(g.stderr, "warning:", w)
	}
}

func deltaPlural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// openBatchStore opens final-delta --out / import-delta --in: a local
// directory, or s3://BUCKET/PREFIX through the shared object-store code.
func openBatchStore(ctx context.Context, loc string, s3o *s3Options) (pgdelta.BatchStore, error) {
	if strings.HasPrefix(loc, "s3://") {
		st, err := s3o.open(ctx, loc, 4, 0, objstore.NewPacer(s3o.MaxRPS))
		if err != nil {
			return nil, err
		}
		return pgdelta.ObjectBatchStore{Store: st, Name: loc}, nil
	}
	if strings.Contains(loc, "://") {
		return nil, usageErrorf("%s: want a directory or s3://BUCKET/PREFIX", loc)
	}
	return pgdelta.DirStore(loc), nil
}
