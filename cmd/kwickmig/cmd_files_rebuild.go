package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/report"
	"github.com/kwick/kwickmig/internal/source"
	ksync "github.com/kwick/kwickmig/internal/sync"
)

// runRebuildCheckpoint is `files sync --rebuild-checkpoint`: it records, in
// a new checkpoint, every object whose file is unchanged since its upload
// (ksync.Rebuild), so the next sync uploads only the rest.
func runRebuildCheckpoint(ctx context.Context, o *FilesSyncOptions, g *globalOptions) error {
	started := time.Now()
	if err := o.validate(); err != nil {
		return err
	}
	if o.DryRun || o.Delete {
		return usageErrorf("--rebuild-checkpoint only records what the bucket already holds: it does not go with --dry-run or --delete (run files sync after it)")
	}
	pacer := objstore.NewPacer(o.S3.MaxRPS)
	store, err := o.S3.open(ctx, o.Dst, o.Concurrency, o.Multipart, pacer)
	if err != nil {
		return err
	}
	cp, err := checkpoint.Open(o.Checkpoint)
	if err != nil {
		var d *checkpoint.DamagedError
		if errors.As(err, &d) {
			return fmt.Errorf("checkpoint %s is damaged (%s); --rebuild-checkpoint writes a new one: move it aside first (mv %s %s.damaged) and run again",
				d.Path, d.Reason, d.Path, d.Path)
		}
		return err
	}
	defer cp.Close()
	if n, err := cp.CountFiles(); err != nil {
		return err
	} else if n > 0 {
		return fmt.Errorf("checkpoint %s already records %d files: --rebuild-checkpoint only fills a new checkpoint; "+
			"move this one aside (mv %s %s.old) and run again, or just run files sync if it is intact", o.Checkpoint, n, o.Checkpoint, o.Checkpoint)
	}
	shard, _ := o.Shard.get() // validated
	if err := bindShard(cp, shard, true); err != nil {
		return err
	}
	if err := bindFiles(cp, filesIdentity(o.Src, o.Dst, o.S3.EndpointURL), true, "use another --checkpoint file"); err != nil {
		return err
	}

	spin := g.spinner("files rebuild-checkpoint", 5)
	res, runErr := ksync.Rebuild(ctx, store, cp, ksync.RebuildOptions{
		Src: o.Src, Prefix: store.Prefix(), Concurrency: o.Concurrency, FollowSymlinks: o.FollowSymlinks,
		Checksum: o.Checksum, Filter: source.Filter{Include: o.Include, Exclude: o.Exclude, Shard: shard},
		Progress: func(c ksync.RebuildCounters) {
			spin.Update(c.Listed, fmt.Sprintf("objects listed %d  recorded %d  not matching %d  errors %d",
				c.Listed, c.Recorded, c.NotMatching, c.Errors),
				"listed", c.Listed, "recorded", c.Recorded, "not_matching", c.NotMatching, "errors", c.Errors)
		},
	})
	spin.Done()
	if res == nil {
		return runErr
	}
	res.Destination = o.Dst
	printRebuildSummary(g, res)

	if runErr == nil && res.Errors > 0 {
		runErr = &partialError{msg: fmt.Sprintf("%d object(s) could not be checked and stay unrecorded (listed above%s); the next files sync uploads them", res.Errors, reportHint(o.Report))}
	}
	return finishRun(ctx, g, runEnd{command: "files rebuild-checkpoint", started: started, report: o.Report, cp: cp, result: res,
		summary: map[string]any{
			"objects_listed": res.ObjectsListed, "recorded": res.Recorded, "bytes_recorded": res.BytesRecorded,
			"not_matching": res.NotMatching, "errors": res.Errors, "duration_seconds": res.DurationSeconds,
			"destination": o.Dst,
		}}, runErr)
}

func printRebuildSummary(g *globalOptions, r *ksync.RebuildResult) {
	w := g.stdout
	title := "files rebuild-checkpoint"
	if r.Interrupted {
		title += " (interrupted: what is recorded is kept)"
	}
	fmt.Fprintf(w, "%s: %s -> %s\n", title, r.Source, r.Destination)
	rows := [][]string{
		{"objects listed", fmt.Sprint(r.ObjectsListed)},
		{"recorded", fmt.Sprintf("%d (%s)", r.Recorded, report.Bytes(r.BytesRecorded))},
		{"not matching", fmt.Sprintf("%d (the next files sync uploads their files, if any)", r.NotMatching)},
		{"  no file", fmt.Sprint(r.NoFile)},
		{"  size differs", fmt.Sprint(r.SizeDiffers)},
		{"  mtime differs", fmt.Sprint(r.MtimeDiffers)},
	}
	if r.ChecksumDiffers > 0 {
		rows = append(rows, []string{"  checksum differs", fmt.Sprint(r.ChecksumDiffers)})
	}
	rows = append(rows, []string{"  not from this sync", fmt.Sprint(r.NotFromSync)},
		[]string{"errors", fmt.Sprint(r.Errors)},
		[]string{"duration", fmt.Sprintf("%.1fs", r.DurationSeconds)})
	report.Table(w, rows)
	for _, f := range r.Failures {
		fmt.Fprintf(w, "FAILED %s: %s\n", report.Quote(f.Path), f.Reason)
	}
	if r.Recorded > 0 && !r.Interrupted {
		fmt.Fprintln(w, "next: run files sync as usual; it uploads only what is not recorded")
	}
}

// rebuildCheckpointFlag is files sync's --rebuild-checkpoint, for f.BoolVar.
func rebuildCheckpointFlag(o *FilesSyncOptions) (value *bool, name string, def bool, usage string) {
	return &o.RebuildCheckpoint, "rebuild-checkpoint", false,
		"recover a lost or damaged checkpoint: record every object whose file has the same size and mtime (one listing, one HEAD per candidate), then stop; the next files sync uploads only the rest"
}
