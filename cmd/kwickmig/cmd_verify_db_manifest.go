package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/objstore/s3store"
	"github.com/kwick/kwickmig/internal/report"
	"github.com/kwick/kwickmig/internal/verify"
)

// verify db --out / --in: verification where no network path joins the
// databases. --out reads the source (after writes stopped) into a manifest;
// --in compares the target with it and behaves like the direct verify db
// (same exit codes, output and report, plus a "manifest" section). Only a
// compare verifies anything: the run record's summary "mode" tells the two
// apart, and the GO verdict counts compares only.

// manifestCompareReport is verify db --in's --report result: the direct
// verify's fields, and the manifest that stood in for the source.
type manifestCompareReport struct {
	Mode string `json:"mode"` // "manifest compare"
	*verify.DBResult
	Manifest *verify.ManifestInfo `json:"manifest"`
}

func (o *VerifyDBOptions) manifestS3() (s3store.Options, error) {
	if (o.S3.ClientCert == "") != (o.S3.ClientKey == "") {
		return s3store.Options{}, usageErrorf("--client-cert and --client-key go together")
	}
	if o.S3.RequestTimeout <= 0 {
		return s3store.Options{}, usageErrorf("--request-timeout %s: want a positive duration such as 60s", o.S3.RequestTimeout)
	}
	return s3store.Options{EndpointURL: o.S3.EndpointURL, Region: o.S3.Region, Profile: o.S3.Profile,
		CABundle: o.S3.CABundle, ClientCert: o.S3.ClientCert, ClientKey: o.S3.ClientKey,
		RequestTimeout: o.S3.RequestTimeout, Concurrency: 4, Pacer: objstore.NewPacer(o.S3.MaxRPS)}, nil
}

func runVerifyDBManifest(ctx context.Context, o *VerifyDBOptions, g *globalOptions, started time.Time) error {
	switch {
	case o.Out != "" && o.In != "":
		return usageErrorf("--out writes a manifest of the source, --in compares the target with one: give one of them")
	case o.Jobs < 1 || o.Jobs > 256:
		return usageErrorf("--jobs %d: want 1..256", o.Jobs)
	case o.SegmentRows < 2:
		return usageErrorf("--segment-rows %d: want at least 2", o.SegmentRows)
	}
	s3o, err := o.manifestS3()
	if err != nil {
		return err
	}
	cp, err := openVerifyCheckpoint(g, o.Checkpoint)
	if err != nil {
		return err
	}
	if cp != nil {
		defer cp.Close()
	}
	if o.Out != "" {
		return runVerifyDBWrite(ctx, o, g, started, s3o, cp)
	}
	return runVerifyDBCompare(ctx, o, g, started, s3o, cp)
}

// runVerifyDBWrite is verify db --source URL --out LOC. The target (flag
// or $KWICKMIG_TARGET_URL) is not used: there is no path to it from here.
func runVerifyDBWrite(ctx context.Context, o *VerifyDBOptions, g *globalOptions, started time.Time, s3o s3store.Options, cp *checkpoint.DB) error {
	if o.Target != "" {
		return usageErrorf("--out writes a manifest of the source: --target is not used (compare with verify db --target URL --in %s where the target is reachable)", o.Out)
	}
	source := firstNonEmpty(o.Source, os.Getenv("KWICKMIG_SOURCE_URL"))
	if source == "" {
		return usageErrorf("--out: --source is required (or $KWICKMIG_SOURCE_URL)")
	}
	var err error
	if source, err = g.connString(source); err != nil {
		return err
	}
	spin := g.spinner("verify db --out", 1)
	res, runErr := verify.WriteManifest(ctx, verify.ManifestWriteOptions{
		Source: source, Location: o.Out, S3: s3o, Tables: o.Tables, Jobs: o.Jobs, SegmentRows: o.SegmentRows,
		AllowEmpty: o.AllowEmpty, Kwickmig: versionString(),
		Progress: func(done, total int) {
			spin.SetTotal(int64(total))
			spin.Update(int64(done), fmt.Sprintf("tables %d/%d", done, total), "tables_done", done, "tables", total)
			g.live.progressOf(int64(done), int64(total), "tables")
		},
	})
	spin.Done()
	var summary map[string]any
	var result any
	if res != nil {
		printManifestWrite(g, res)
		result = res
		summary = map[string]any{
			"mode": verify.ModeManifestWrite, "source": res.Source, "location": res.Location,
			"snapshot_time": res.SnapshotTime, "tables_written": res.TablesWritten, "rows_source": res.Rows,
			"segments": res.Segments, "sequences": res.Sequences, "rows_file_bytes": res.RowsFileBytes,
			"duration_seconds": res.DurationSeconds,
		}
	}
	end := runEnd{command: "verify db", started: started, report: o.Report, cp: cp, result: result, summary: summary,
		secrets: []string{source}, noRecord: cp == nil}
	return finishRun(ctx, g, end, runErr)
}

// runVerifyDBCompare is verify db --target URL --in LOC. The source (flag
// or $KWICKMIG_SOURCE_URL) is never connected to: the manifest stands in.
func runVerifyDBCompare(ctx context.Context, o *VerifyDBOptions, g *globalOptions, started time.Time, s3o s3store.Options, cp *checkpoint.DB) error {
	if o.Source != "" {
		return usageErrorf("--in compares the target with a manifest: --source is not used (the manifest was written from it)")
	}
	if len(o.Tables) > 0 {
		return usageErrorf("--in compares the tables the manifest was written for: --table goes with --out")
	}
	target := firstNonEmpty(o.Target, os.Getenv("KWICKMIG_TARGET_URL"))
	if target == "" {
		return usageErrorf("--in: --target is required (or $KWICKMIG_TARGET_URL)")
	}
	var err error
	if target, err = g.connString(target); err != nil {
		return err
	}
	spin := g.spinner("verify db --in", 1)
	res, info, runErr := verify.CompareManifest(ctx, verify.ManifestCompareOptions{
		Target: target, Location: o.In, S3: s3o, Jobs: o.Jobs, MaxListed: o.MaxListed,
		Progress: func(done, total int) {
			spin.SetTotal(int64(total))
			spin.Update(int64(done), fmt.Sprintf("tables %d/%d", done, total), "tables_done", done, "tables", total)
			g.live.progressOf(int64(done), int64(total), "tables")
		},
	})
	spin.Done()
	var summary map[string]any
	var result any
	if res != nil {
		fmt.Fprintf(g.stdout, "manifest %s: written %s by kwickmig %s, snapshot of %s at %s\n", info.Location,
			info.Created.Format(time.RFC3339), info.WrittenBy, res.Source, info.SnapshotTime.Format(time.RFC3339))
		printVerifyDB(g, res)
		result = manifestCompareReport{Mode: verify.ModeManifestCompare, DBResult: res, Manifest: info}
		var missing, extra, changed int64
		for _, t := range res.Tables {
			missing, extra, changed = missing+t.Missing, extra+t.Extra, changed+t.Changed
		}
		summary = map[string]any{
			"mode": verify.ModeManifestCompare, "manifest": info.Location, "manifest_snapshot_time": info.SnapshotTime,
			"source": res.Source, "target": res.Target, "tables_checked": res.TablesChecked,
			"tables_differ": res.TablesDiffer, "schema_differences": len(res.Schema),
			"sequences_behind": res.SequencesBehind, "rows_source": res.RowsSource, "rows_target": res.RowsTarget,
			"rows_missing": missing, "rows_extra": extra, "rows_changed": changed,
			"segments": res.Segments, "duration_seconds": res.DurationSeconds,
		}
	}
	end := runEnd{command: "verify db", started: started, report: o.Report, cp: cp, result: result, summary: summary,
		secrets: []string{target}, noRecord: cp == nil}
	return finishRun(ctx, g, end, verifyDBOutcome(res, runErr, o.Report))
}

func printManifestWrite(g *globalOptions, r *verify.ManifestWriteResult) {
	w := g.stdout
	fmt.Fprintf(w, "verify db: manifest of %s -> %s\n", r.Source, r.Location)
	rows := [][]string{{"TABLE", "KEY", "SOURCE ROWS", "SEGMENTS", "ROWS FILE"}}
	for _, t := range r.Tables {
		key := strings.Join(t.Key, ",")
		if key == "" {
			key = "(none: whole table)"
		}
		rows = append(rows, []string{report.Quote(t.Table), key, fmt.Sprint(t.Rows), fmt.Sprint(t.Segments), report.Bytes(t.RowsFileBytes)})
	}
	report.Table(w, rows)
	fmt.Fprintf(w, "%d tables, %d rows, %d segments, %d sequences, %d grants, %s written, snapshot at %s, %.1fs\n",
		r.TablesWritten, r.Rows, r.Segments, r.Sequences, r.Privileges, report.Bytes(r.RowsFileBytes),
		r.SnapshotTime.Format(time.RFC3339), r.DurationSeconds)
	fmt.Fprintf(w, "OK: manifest written; compare inside the target's network with: kwickmig verify db --target URL --in %s\n", r.Location)
}
