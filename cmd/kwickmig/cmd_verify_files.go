package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/metrics"
	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/report"
	"github.com/kwick/kwickmig/internal/source"
	ksync "github.com/kwick/kwickmig/internal/sync"
	"github.com/kwick/kwickmig/internal/verify"
)

// VerifyFilesOptions are the flags of `kwickmig verify files`.
type VerifyFilesOptions struct {
	Src            string
	Dst            string
	Checksum       bool
	Deep           bool
	Sample         float64
	Report         string
	Checkpoint     string
	NoCheckpoint   bool
	Concurrency    int
	Walkers        int
	FollowSymlinks bool
	MaxListed      int
	Ranges         int
	Include        []string
	Exclude        []string
	Shard          shardOption
	S3             s3Options
	Metrics        metricsOptions

	checkpointGiven bool // --checkpoint was on the command line

	Full         bool    // --full: re-prove every file's content
	SampleProven float64 // --sample-proven: percent of proven files re-proven anyway
}

func (o *VerifyFilesOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.Src, "src", "", "source directory (e.g. the NFS mount)")
	f.StringVar(&o.Dst, "dst", "", "destination s3://BUCKET[/PREFIX]")
	f.BoolVar(&o.Checksum, "checksum", false, "also compare each object's stored checksum with a fresh hash of its file (one HEAD per file)")
	f.BoolVar(&o.Deep, "deep", false, "also download every object and compare bytes (see --sample)")
	f.Float64Var(&o.Sample, "sample", 100, "with --deep: compare bytes for this random percentage of files")
	f.StringVar(&o.Report, "report", "", "write the result as JSON to this file")
	f.StringVar(&o.Checkpoint, "checkpoint", "", "files sync checkpoint (default: files.db in the --state directory): tells changes since the last sync from real mismatches (the default is used if it exists; one that cannot be read stops the run)")
	f.BoolVar(&o.NoCheckpoint, "no-checkpoint", false, "verify without the checkpoint (files changed since the last sync then count as differences)")
	f.IntVar(&o.Concurrency, "concurrency", 32, "S3 requests in flight checking content (a HEAD per file with --checksum, a GET with --deep)")
	f.IntVar(&o.Walkers, "walkers", 32, "directories read and listed concurrently")
	f.BoolVar(&o.FollowSymlinks, "follow-symlinks", false, "follow symbolic links (as files sync --follow-symlinks)")
	f.IntVar(&o.MaxListed, "max-listed", 1000, "differences listed (counts are always complete)")
	f.IntVar(&o.Ranges, "list-ranges", 32, "split the tree into at least this many subtrees, each listed flat as one key range")
	f.StringArrayVar(&o.Include, "include", nil, "only files matching this glob (as files sync --include; repeatable)")
	f.StringArrayVar(&o.Exclude, "exclude", nil, "leave out files and directories matching this glob, and their objects (as files sync --exclude)")
	o.addProofFlags(f)
	o.S3.AddFlags(f)
	o.Metrics.AddFlags(f)
	o.Shard.AddFlags(f)
}

func newVerifyFilesCommand(g *globalOptions) *cobra.Command {
	o := &VerifyFilesOptions{}
	cmd := &cobra.Command{
		Use:   "files --src DIR --dst s3://BUCKET[/PREFIX]",
		Short: "Compare the source tree with the bucket: missing, extra, size (--checksum, --deep: content)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.checkpointGiven = cmd.Flags().Changed("checkpoint")
			return o.Metrics.run(cmd.Context(), "verify files", func() error { return runVerifyFiles(cmd.Context(), o, g) })
		},
	}
	o.AddFlags(cmd)
	return cmd
}

func (o *VerifyFilesOptions) validate() error {
	switch {
	case o.Src == "":
		return usageErrorf("--src is required")
	case o.Dst == "":
		return usageErrorf("--dst is required (s3://BUCKET[/PREFIX])")
	case o.Sample <= 0 || o.Sample > 100:
		return usageErrorf("--sample %g: want a percentage in (0, 100]", o.Sample)
	case o.Sample != 100 && !o.Deep:
		return usageErrorf("--sample goes with --deep")
	case o.Concurrency < 1 || o.Concurrency > 4096:
		return usageErrorf("--concurrency %d: want 1..4096", o.Concurrency)
	case o.Walkers < 1 || o.Walkers > 1024:
		return usageErrorf("--walkers %d: want 1..1024", o.Walkers)
	case o.Ranges < 1 || o.Ranges > 1<<20:
		return usageErrorf("--list-ranges %d: want 1..1048576", o.Ranges)
	case o.SampleProven < 0 || o.SampleProven > 100:
		return usageErrorf("--sample-proven %g: want a percentage in [0, 100]", o.SampleProven)
	}
	if err := (source.Filter{Include: o.Include, Exclude: o.Exclude}).Validate(); err != nil {
		return usageErrorf("%v", err)
	}
	if _, err := o.Shard.get(); err != nil {
		return err
	}
	st, err := os.Stat(o.Src)
	if err != nil {
		return usageErrorf("--src %s: %v", o.Src, errors.Unwrap(err))
	}
	if !st.IsDir() {
		return usageErrorf("--src %s: not a directory", o.Src)
	}
	return nil
}

func runVerifyFiles(ctx context.Context, o *VerifyFilesOptions, g *globalOptions) error {
	started := time.Now()
	if err := o.validate(); err != nil {
		return err
	}
	pacer := objstore.NewPacer(o.S3.MaxRPS)
	o.Metrics.s3(pacer)
	store, err := o.S3.open(ctx, o.Dst, max(o.Concurrency, o.Walkers), 0, pacer)
	if err != nil {
		return err
	}
	shard, _ := o.Shard.get() // validated
	cp, err := o.openCheckpoint()
	if err != nil {
		return err
	}
	if cp != nil {
		defer cp.Close()
		if err := bindShard(cp, shard, false); err != nil {
			return err
		}
		if err := bindFiles(cp, filesIdentity(o.Src, o.Dst, o.S3.EndpointURL), false, "use the sync's --checkpoint, or --no-checkpoint"); err != nil {
			return err
		}
		// An unmounted share would show every file as deleted since the
		// sync and advise syncing again: refuse, as files sync does.
		if err := ksync.CheckSource(cp, o.Src); err != nil {
			return err
		}
	}

	spin := g.spinner("verify files", 5)
	// The files the last sync or verification saw: recorded with each run,
	// so no count of the checkpoint is needed.
	spin.SetTotal(previousCount(cp, verifyFilesTotal))
	vm := o.Metrics.srv.VerifyFiles()
	res, runErr := verify.VerifyFiles(ctx, store, cp, verify.FilesOptions{
		Full: o.Full, SampleProvenPct: o.SampleProven,
		Src: o.Src, Prefix: store.Prefix(), Walkers: o.Walkers, Concurrency: o.Concurrency,
		Checksum: o.Checksum, Deep: o.Deep, SamplePct: o.Sample, FollowSymlinks: o.FollowSymlinks,
		MaxListed: o.MaxListed, Ranges: o.Ranges, Filter: source.Filter{Include: o.Include, Exclude: o.Exclude, Shard: shard},
		Progress: func(c verify.FilesCounters) {
			vm.Progress(metrics.VerifyCounters{Files: c.Files, Objects: c.Objects, ContentChecked: c.ContentChecked, Differences: c.Differences})
			spin.Update(c.Files, fmt.Sprintf("files %s  objects %d  content checked %d%s  differences %d",
				spin.Count(c.Files), c.Objects, c.ContentChecked, provenProgress(c), c.Differences),
				"files", c.Files, "objects", c.Objects, "content_checked", c.ContentChecked, "differences", c.Differences)
			g.live.progress(c.Files, 0, fmt.Sprintf("objects %d, differences %d", c.Objects, c.Differences))
		},
	})
	spin.Done()
	vm.Progress(metrics.VerifyCounters{Files: res.FilesChecked, Objects: res.ObjectsListed, ContentChecked: res.ContentChecked, Differences: int64(len(res.Differences)) + res.Truncated})
	vm.Kinds(verifyKinds(res.Counts))
	res.Destination = o.Dst
	if runErr == nil || res.Interrupted {
		printVerifyFiles(g, res)
	}
	summary := map[string]any{
		"source": res.Source, "destination": res.Destination, "mode": res.Mode,
		"content_checked": res.ContentChecked, "full": res.Full, "proven_earlier": res.ProvenEarlier, "full_proof_at": fullProofAt(res),
		"files_checked": res.FilesChecked, "objects_listed": res.ObjectsListed, "matched": res.Matched,
		"mismatches": res.Mismatches, "changed_since_sync": res.ChangedSince, "errors": res.Errors,
		"counts": res.Counts, "duration_seconds": res.DurationSeconds,
	}
	if shard.Active() {
		summary["shard"] = shard.String() // report: each shard verified after its sync
	}
	end := runEnd{command: "verify files", started: started, report: o.Report, cp: cp, result: res, summary: summary, noRecord: cp == nil}
	return finishRun(ctx, g, end, verifyFilesOutcome(res, runErr, o.Report))
}

// verifyFilesOutcome is the run's error: why it could not run, or what
// differs.
func verifyFilesOutcome(res *verify.FilesResult, runErr error, reportPath string) error {
	if runErr != nil {
		return runErr
	}
	if !res.OK() {
		var parts []string
		if res.Mismatches > 0 {
			parts = append(parts, nounCount(res.Mismatches, "mismatch", "mismatches"))
		}
		if res.ChangedSince > 0 {
			parts = append(parts, nounCount(res.ChangedSince, "file changed since the last sync (run files sync again)", "files changed since the last sync (run files sync again)"))
		}
		if res.Errors > 0 {
			parts = append(parts, nounCount(res.Errors, "file could not be checked", "files could not be checked"))
		}
		return &partialError{msg: "verify files: " + strings.Join(parts, ", ") + " (listed above" + reportHint(reportPath) + ")"}
	}
	return nil
}

// openCheckpoint opens the checkpoint verify files was given or found.
// Without it every file changed since the last sync is reported as a
// mismatch (thousands of false MISSING while a sync runs), so one that
// exists but cannot be read stops the run; --no-checkpoint (or
// an empty --checkpoint) goes without on purpose. Verify never creates one.
func (o *VerifyFilesOptions) openCheckpoint() (*checkpoint.DB, error) {
	if o.NoCheckpoint || o.Checkpoint == "" {
		return nil, nil
	}
	if _, err := os.Lstat(o.Checkpoint); errors.Is(err, os.ErrNotExist) {
		if o.checkpointGiven {
			return nil, fmt.Errorf("checkpoint %s does not exist (give the sync's --checkpoint, or --no-checkpoint to verify without one)", o.Checkpoint)
		}
		return nil, nil
	}
	cp, err := checkpoint.Open(o.Checkpoint)
	switch {
	case err == nil:
		return cp, nil
	case errors.Is(err, checkpoint.ErrInUse):
		holder := checkpoint.Holder(o.Checkpoint)
		if holder == "" {
			holder = "a files sync"
		}
		return nil, fmt.Errorf("%s is running on checkpoint %s: verify files after it stops (stop the sync loop first), "+
			"or --no-checkpoint: files it changes meanwhile then count as differences", holder, o.Checkpoint)
	}
	return nil, err
}

var fileKindLabels = []struct{ kind, label string }{
	{verify.KindMissing, "missing in bucket"},
	{verify.KindExtra, "extra in bucket"},
	{verify.KindSize, "size mismatch"},
	{verify.KindChecksum, "checksum mismatch"},
	{verify.KindContent, "content mismatch"},
	{verify.KindChanged, "changed since sync"},
	{verify.KindNotSynced, "not yet synced"},
	{verify.KindDeletedSinceSync, "deleted since sync"},
	{verify.KindError, "could not check"},
}

func printVerifyFiles(g *globalOptions, r *verify.FilesResult) {
	w := g.stdout
	title := "verify files"
	if r.Interrupted {
		title += " (interrupted)"
	}
	mode := r.Mode
	if r.SamplePct > 0 {
		mode += fmt.Sprintf(" %g%%", r.SamplePct)
	}
	fmt.Fprintf(w, "%s: %s -> %s (%s)\n", title, r.Source, r.Destination, mode)
	rows := [][]string{
		{"files checked", fmt.Sprint(r.FilesChecked)},
		{"objects listed", fmt.Sprint(r.ObjectsListed)},
		{"matched", fmt.Sprint(r.Matched)},
	}
	for _, k := range fileKindLabels {
		if n := r.Counts[k.kind]; n > 0 || k.kind == verify.KindMissing || k.kind == verify.KindExtra || k.kind == verify.KindSize {
			rows = append(rows, []string{k.label, fmt.Sprint(n)})
		}
	}
	if r.ContentChecked > 0 || r.Mode != "size" {
		rows = append(rows, []string{"content checked", fmt.Sprintf("%d (read %s, downloaded %s)", r.ContentChecked, report.Bytes(r.BytesRead), report.Bytes(r.BytesDownloaded))})
	}
	rows = append(rows, proofRows(r)...)
	if r.NoStoredSum > 0 {
		rows = append(rows, []string{"no stored checksum", fmt.Sprintf("%d (compared byte for byte)", r.NoStoredSum)})
	}
	if len(r.ComparedBy) > 0 {
		rows = append(rows, []string{"compared by", comparedBy(r)})
	}
	if r.Skipped > 0 {
		rows = append(rows, []string{"skipped", fmt.Sprintf("%d (symlinks, FIFOs, sockets, devices)", r.Skipped)})
	}
	rows = append(rows, []string{"list requests", fmt.Sprint(r.ListRequests)},
		[]string{"duration", fmt.Sprintf("%.1fs", r.DurationSeconds)})
	report.Table(w, rows)
	for _, d := range r.Differences {
		line := fmt.Sprintf("%s %s", strings.ToUpper(d.Kind), report.Quote(d.Path))
		if d.Kind == verify.KindSize {
			line += fmt.Sprintf(": file %d bytes, object %d bytes", d.SourceSize, d.ObjectSize)
		}
		if d.Detail != "" {
			line += ": " + d.Detail
		}
		fmt.Fprintln(w, line)
	}
	if r.Truncated > 0 {
		fmt.Fprintf(w, "... and %d more differences (--max-listed)\n", r.Truncated)
	}
	if r.OK() {
		fmt.Fprintln(w, "OK: every file is in the bucket"+map[bool]string{true: " with the same bytes", false: " with the same size"}[r.Mode != "size"])
	}
}

// comparedBy renders how the contents were compared, in a fixed order, e.g.
// "crc32c 120, crc32c-composite 3 (part sizes from the object)".
func comparedBy(r *verify.FilesResult) string {
	var parts []string
	for _, m := range []string{verify.MethodETagMD5, verify.MethodCRC32C, verify.MethodComposite, verify.MethodCRC64NVME, verify.MethodSHA256, verify.MethodBytes} {
		if n := r.ComparedBy[m]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", m, n))
		}
	}
	s := strings.Join(parts, ", ")
	if r.StoredSumWrong > 0 {
		s += fmt.Sprintf("; %d stored checksums disagreed while the bytes matched", r.StoredSumWrong)
	}
	return s
}
