package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/metrics"
	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/report"
	"github.com/kwick/kwickmig/internal/source"
	ksync "github.com/kwick/kwickmig/internal/sync"
)

// FilesSyncOptions are the flags of `kwickmig files sync`.
type FilesSyncOptions struct {
	RebuildCheckpoint bool // see cmd_files_rebuild.go

	Src            string
	Dst            string
	Checkpoint     string
	Concurrency    int
	Adaptive       bool
	Walkers        int
	DryRun         bool
	Delete         bool
	Checksum       bool
	FollowSymlinks bool
	Include        []string
	Exclude        []string
	Report         string
	Multipart      int64
	MaxDelete      string
	AcceptChange   bool
	OutageTimeout  time.Duration
	MaxMemory      int64
	Shard          shardOption
	S3             s3Options
	Metrics        metricsOptions
}

func (o *FilesSyncOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.Src, "src", "", "source directory (e.g. the NFS mount)")
	f.StringVar(&o.Dst, "dst", "", "destination s3://BUCKET[/PREFIX]")
	f.StringVar(&o.Checkpoint, "checkpoint", "", "checkpoint file, created with mode 0600 (default: files.db in the --state directory)")
	f.IntVar(&o.Concurrency, "concurrency", ksync.DefaultConcurrency, "most uploads in flight: the run finds how many pay, from 64 up to this (see --adaptive)")
	f.BoolVar(&o.Adaptive, "adaptive", true, "grow the uploads in flight while throughput grows, back off on throttling and rising latency; --adaptive=false runs exactly --concurrency")
	f.IntVar(&o.Walkers, "walkers", 32, "directories read concurrently (size for NFS latency, not cores)")
	f.BoolVar(&o.DryRun, "dry-run", false, "print what would be uploaded or deleted; change nothing (checkpoint included)")
	f.BoolVar(&o.Delete, "delete", false, "delete objects whose source files are gone (and their records)")
	f.BoolVar(&o.Checksum, "checksum", false, "decide by content hash (reads every recorded file) instead of size/mtime/ctime/inode")
	f.BoolVar(rebuildCheckpointFlag(o))
	f.BoolVar(&o.FollowSymlinks, "follow-symlinks", false, "follow symbolic links (loops are detected and reported)")
	f.StringArrayVar(&o.Include, "include", nil, "only files matching this glob (repeatable; a glob without / matches the base name)")
	f.StringArrayVar(&o.Exclude, "exclude", nil, "leave out files and directories matching this glob (repeatable)")
	f.StringVar(&o.Report, "report", "", "write the run report as JSON to this file")
	f.Var(newSizeFlag(&o.Multipart, 64<<20, 5<<20), "multipart-threshold", "files larger than this are uploaded in parts (e.g. 64MiB, 1GiB or a byte count; min 5MiB: S3's smallest part)")
	f.StringVar(&o.MaxDelete, "max-delete", "", "with --delete: refuse (delete nothing, exit 1) when more than N objects or P% of the recorded files would go (default: the larger of 100 and 1%)")
	f.BoolVar(&o.AcceptChange, "accept-source-change", false, "adopt a source root that is another filesystem, mount or directory than the checkpoint recorded, or is empty (default: refuse, exit 1)")
	f.DurationVar(&o.OutageTimeout, "outage-timeout", 10*time.Minute, "how long the endpoint may stay unreachable (the run pauses and probes it) before the run stops with exit 1")
	f.Var(newSizeFlag(&o.MaxMemory, ksync.DefaultMaxMemory, 1<<20), "max-memory", "bytes buffered for uploads, whatever --concurrency is (e.g. 256MiB, 1GiB); larger files stream from disk")
	o.S3.AddFlags(f)
	o.Metrics.AddFlags(f)
	o.Shard.AddFlags(f)
}

func newFilesSyncCommand(g *globalOptions) *cobra.Command {
	o := &FilesSyncOptions{}
	cmd := &cobra.Command{
		Use:   "sync --src DIR --dst s3://BUCKET[/PREFIX]",
		Short: "Upload new and changed files to S3, resumably; run it again and again until cutover",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.Metrics.run(cmd.Context(), "files sync", func() error { return runFilesSync(cmd.Context(), o, g) })
		},
	}
	o.AddFlags(cmd)
	return cmd
}

func (o *FilesSyncOptions) validate() error {
	if o.Src == "" {
		return usageErrorf("--src is required")
	}
	if o.Dst == "" {
		return usageErrorf("--dst is required (s3://BUCKET[/PREFIX])")
	}
	st, err := os.Stat(o.Src)
	if err != nil {
		return usageErrorf("--src %s: %v", o.Src, errors.Unwrap(err))
	}
	if !st.IsDir() {
		return usageErrorf("--src %s: not a directory", o.Src)
	}
	if o.Concurrency < 1 || o.Concurrency > 4096 {
		return usageErrorf("--concurrency %d: want 1..4096", o.Concurrency)
	}
	if o.Walkers < 1 || o.Walkers > 1024 {
		return usageErrorf("--walkers %d: want 1..1024", o.Walkers)
	}
	if err := (source.Filter{Include: o.Include, Exclude: o.Exclude}).Validate(); err != nil {
		return usageErrorf("%v", err)
	}
	if _, err := ksync.ParseDeleteLimit(o.MaxDelete); err != nil {
		return usageErrorf("%v", err)
	}
	if o.MaxDelete != "" && !o.Delete {
		return usageErrorf("--max-delete only applies with --delete")
	}
	if o.OutageTimeout <= 0 {
		return usageErrorf("--outage-timeout %s: want a positive duration like 10m", o.OutageTimeout)
	}
	_, err = o.Shard.get()
	return err
}

func runFilesSync(ctx context.Context, o *FilesSyncOptions, g *globalOptions) error {
	if o.RebuildCheckpoint {
		return runRebuildCheckpoint(ctx, o, g)
	}
	started := time.Now()
	if err := o.validate(); err != nil {
		return err
	}
	pacer := objstore.NewPacer(o.S3.MaxRPS)
	o.Metrics.s3(pacer)
	store, err := o.S3.open(ctx, o.Dst, o.Concurrency, o.Multipart, pacer)
	if err != nil {
		return err
	}
	identity := filesIdentity(o.Src, o.Dst, o.S3.EndpointURL)
	shard, _ := o.Shard.get() // validated

	var cp *checkpoint.DB
	if o.DryRun {
		// A dry run changes nothing: the checkpoint is read if it exists.
		if _, err := os.Stat(o.Checkpoint); err == nil {
			if cp, err = checkpoint.OpenReadOnly(o.Checkpoint); err != nil {
				return err
			}
		}
	} else if cp, err = checkpoint.Open(o.Checkpoint); err != nil {
		return err
	}
	if cp != nil {
		defer cp.Close()
		if err := bindShard(cp, shard, !o.DryRun); err != nil {
			return err
		}
		if err := bindFiles(cp, identity, !o.DryRun, "use another --checkpoint file"); err != nil {
			return err
		}
	}

	limit, _ := ksync.ParseDeleteLimit(o.MaxDelete)
	var warnings []string
	if o.Delete && !o.DryRun {
		// A deletion on a bucket without versioning cannot be undone: say
		// so once, without failing (the bucket policy is not ours to set).
		if on, err := store.Versioned(ctx); err == nil && !on {
			warnings = append(warnings, fmt.Sprintf("bucket %s has no versioning: objects deleted by --delete cannot be recovered", store.Bucket()))
		} else if err != nil {
			warnings = append(warnings, fmt.Sprintf("bucket %s: could not read its versioning state (%v): deletions may not be recoverable", store.Bucket(), err))
		}
	}
	spin := g.spinner("files sync", 5)
	// The last sync's count is the total to expect (files come and go
	// between runs; past it the line just counts).
	spin.SetTotal(previousCount(cp, filesSyncTotal))
	var outage *metrics.Outage // --metrics-addr, set below
	syncer := ksync.New(store, cp, ksync.Options{
		Src: o.Src, Prefix: store.Prefix(), Concurrency: o.Concurrency, Walkers: o.Walkers, MaxMemory: o.MaxMemory,
		DryRun: o.DryRun, Delete: o.Delete, Checksum: o.Checksum, FollowSymlinks: o.FollowSymlinks,
		FixedConcurrency: !o.Adaptive, OnConcurrency: func(limit int, why string) { g.logger.Debug("uploads in flight", "limit", limit, "why", why) },
		Include: o.Include, Exclude: o.Exclude, Pacer: pacer,
		MaxDelete: limit, AcceptSourceChange: o.AcceptChange, OutageTimeout: o.OutageTimeout,
		Shard: shard,
		OnOutage: func(since time.Time, down bool) {
			outage.Set(down)
			if down {
				g.logger.Warn("endpoint unreachable: paused, probing it", "since", since.Format(time.RFC3339), "outage_timeout", o.OutageTimeout.String())
			} else {
				g.logger.Info("endpoint answers again: resuming", "unreachable_for", time.Since(since).Round(time.Second).String())
			}
		},
		Progress: func(c ksync.Counters) {
			secs := max(c.Elapsed.Seconds(), 0.001)
			outage := ""
			if !c.OutageSince.IsZero() {
				outage = fmt.Sprintf("  ENDPOINT UNREACHABLE since %s (paused, probing)", c.OutageSince.Format(time.TimeOnly))
			}
			spin.SetBytes(c.BytesUploaded)
			spin.Update(c.Scanned, fmt.Sprintf("scanned %s  uploaded %d (%s)  %.0f files/s  %.1f MB/s  unchanged %d  errors %d  queue %d%s",
				spin.Count(c.Scanned), c.Uploaded, report.Bytes(c.BytesUploaded), float64(c.Uploaded)/secs,
				float64(c.BytesUploaded)/secs/1e6, c.Unchanged, c.Failed, c.Queued, outage),
				"scanned", c.Scanned, "uploaded", c.Uploaded, "bytes", c.BytesUploaded,
				"files_per_s", int(float64(c.Uploaded)/secs), "unchanged", c.Unchanged,
				"failed", c.Failed, "queue", c.Queued, "throttles", c.Throttles)
			g.live.progress(c.Scanned, c.BytesUploaded, fmt.Sprintf("uploaded %d, unchanged %d, failed %d", c.Uploaded, c.Unchanged, c.Failed))
		},
	})
	outage = o.Metrics.filesSync(syncer)
	res, runErr := syncer.Run(ctx)
	spin.Done()
	res.Destination = o.Dst
	res.Warnings = append(res.Warnings, warnings...)
	printFilesSyncSummary(g, res)

	summary := map[string]any{
		"files_scanned": res.FilesScanned, "files_uploaded": res.FilesUploaded,
		"files_unchanged": res.FilesUnchanged, "files_deleted": res.FilesDeleted,
		"files_failed": res.FilesFailed, "bytes_uploaded": res.BytesUploaded,
		"duration_seconds": res.DurationSeconds, "destination": o.Dst,
	}
	if shard.Active() {
		summary["shard"] = shard.String()
	}
	if runErr == nil && res.FilesFailed > 0 {
		runErr = &partialError{msg: fmt.Sprintf("%d file(s) failed (listed above%s)", res.FilesFailed, reportHint(o.Report))}
	}
	return finishRun(ctx, g, runEnd{command: "files sync", started: started, report: o.Report, cp: cp,
		result: res, summary: summary, noRecord: cp == nil || o.DryRun}, runErr)
}

// filesIdentity is what the checkpoint's files section is bound to: files
// sync, verify files and --rebuild-checkpoint must agree on it, or the next
// sync refuses the rebuilt checkpoint. s3://b/p and s3://b/p/ are one
// destination.
func filesIdentity(src, dst, endpoint string) string {
	abs, _ := filepath.Abs(src)
	id := fmt.Sprintf("%s -> %s", abs, strings.TrimRight(dst, "/"))
	if endpoint != "" {
		id += " at " + endpoint
	}
	return id
}

// sameFilesIdentity compares identities with the destination's trailing
// slashes ignored, so checkpoints bound before that rule keep working.
func sameFilesIdentity(a, b string) bool {
	norm := func(id string) string {
		src, rest, ok := strings.Cut(id, " -> ")
		if !ok {
			return id
		}
		dst, at, hasAt := strings.Cut(rest, " at ")
		id = src + " -> " + strings.TrimRight(dst, "/")
		if hasAt {
			id += " at " + at
		}
		return id
	}
	return norm(a) == norm(b)
}

// bindFiles checks (and with write, records) that cp's files section
// belongs to identity; hint says what to do on a mismatch.
func bindFiles(cp *checkpoint.DB, identity string, write bool, hint string) error {
	b, err := cp.Bound("files")
	if err != nil {
		return err
	}
	switch {
	case b == "" && write:
		return cp.Bind("files", identity)
	case b == "" || sameFilesIdentity(b, identity):
		return nil
	}
	return fmt.Errorf("%w: checkpoint %s records files %q, not %q (%s)", checkpoint.ErrMismatch, cp.Path(), b, identity, hint)
}

func reportHint(path string) string {
	if path == "" {
		return ""
	}
	return " and in " + path
}

func printFilesSyncSummary(g *globalOptions, r *ksync.Result) {
	w := g.stdout
	title := "files sync"
	if r.DryRun {
		title += " (dry run: nothing was changed)"
	}
	if r.Interrupted {
		title += " (interrupted)"
	}
	if r.Shard != "" {
		title += " shard " + r.Shard
	}
	fmt.Fprintf(w, "%s: %s -> %s\n", title, r.Source, r.Destination)
	rate := float64(r.FilesUploaded) / max(r.DurationSeconds, 0.001)
	verb, delVerb := "uploaded", "deleted"
	if r.DryRun {
		verb, delVerb = "to upload", "to delete"
	}
	rows := [][]string{
		{"scanned", fmt.Sprint(r.FilesScanned)},
		{verb, fmt.Sprintf("%d (%s, %.0f files/s)", r.FilesUploaded, report.Bytes(r.BytesUploaded), rate)},
		{"unchanged", fmt.Sprint(r.FilesUnchanged)},
		{delVerb, fmt.Sprint(r.FilesDeleted)},
		{"gone from source", fmt.Sprint(r.FilesMissing)},
		{"skipped", fmt.Sprint(r.FilesSkipped)},
		{"failed", fmt.Sprint(r.FilesFailed)},
		{"deletions refused", fmt.Sprint(r.DeletionsRefused)},
		{"endpoint outages", fmt.Sprint(r.Outages)},
		{"throttle events", fmt.Sprint(r.Throttles)},
		{"duration", fmt.Sprintf("%.1fs", r.DurationSeconds)},
	}
	report.Table(w, rows)
	if r.DryRun {
		for _, p := range r.WouldUpload {
			fmt.Fprintf(w, "would upload: %s\n", report.Quote(p))
		}
		if n := r.FilesUploaded - int64(len(r.WouldUpload)); n > 0 && len(r.WouldUpload) > 0 {
			fmt.Fprintf(w, "... and %d more to upload (lists stop at 10,000)\n", n)
		}
	}
	missing := r.MissingOnSource
	if r.DeletionsRefused > 0 && len(missing) > 20 {
		// A refused mass deletion: the count and the first paths are what
		// the operator needs, not thousands of lines (the --report file
		// lists up to 10,000).
		missing = missing[:20]
	}
	for _, p := range missing {
		verb := "gone from source (kept; --delete removes it)"
		if r.DeletionsRefused > 0 {
			verb = "gone from source (NOT deleted: more than --max-delete)"
		} else if r.DryRun && r.FilesDeleted > 0 {
			verb = "would delete"
		} else if r.FilesDeleted > 0 {
			verb = "deleted"
		}
		fmt.Fprintf(w, "%s: %s\n", verb, report.Quote(p))
	}
	if n := max(r.FilesMissing, r.FilesDeleted, r.DeletionsRefused) - int64(len(missing)); n > 0 && len(missing) > 0 {
		fmt.Fprintf(w, "... and %d more gone from source\n", n)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "FAILED %s: %s\n", report.Quote(f.Path), f.Reason)
	}
	if r.FailuresTruncated > 0 {
		fmt.Fprintf(w, "... and %d more failures\n", r.FailuresTruncated)
	}
	for _, m := range r.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", m)
	}
}
