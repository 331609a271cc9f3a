// Package pgcopy moves a PostgreSQL database in bulk, as of one consistent
// snapshot: schema sections from pg_dump, data through streaming COPY with
// parallel jobs (large tables split into ctid page ranges), sequences, and
// post-data (indexes, constraints, triggers) built in parallel. It copies
// directly (Copy) or through compressed files in a directory or bucket
// (Export, Import). Progress is kept in the checkpoint so an interrupted run
// resumes part by part.
package pgcopy

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/kwick/kwickmig/internal/objstore/s3store"
	"github.com/kwick/kwickmig/internal/report"
)

// Defaults for zero-valued options.
const (
	DefaultJobs      = 4
	DefaultIndexJobs = 4
	// DefaultSplitLargerThan: a part loads without FREEZE unless it is a
	// whole table (only the transaction that truncates a table may freeze
	// its rows), and an unfrozen heap costs the target a later pass that
	// sets every row's hint bits: its index builds do it (measured: the
	// receipts primary key 1.6 s frozen, 8.5 s not) and autovacuum does it
	// again. One COPY stream moves 4GB in one to two minutes; only bigger
	// tables are worth that price.
	DefaultSplitLargerThan = 4 << 30
	DefaultCheckpoint      = "kwickmig.db"
	// DefaultMaintenanceWorkMem is small on purpose: on the benchmark
	// machine an index build of 6M keys took 3.1 s at 4MB, 3.7 s at 16MB,
	// 4.6 s at 64MB and 7.4 s at 256MB (a sort of runs that fit the CPU
	// caches, merged, beats one huge quicksort), and foreign key checks
	// were fastest at 16MB too. See README, "db copy performance".
	DefaultMaintenanceWorkMem = "16MB"
)

// Options are shared by Copy, Export and Import. Zero values get defaults in
// fill.
type Options struct {
	SourceURL string // Copy, Export
	TargetURL string // Copy, Import

	Jobs      int // parallel COPY streams
	IndexJobs int // parallel index/constraint builds
	// IndexWorkers: the target's parallel workers per index build or
	// foreign key check; 0 none (each of the IndexJobs builds is one
	// backend), -1 the server's own settings.
	IndexWorkers int
	// MaintenanceWorkMem for index builds and foreign key checks on the
	// target (default DefaultMaintenanceWorkMem); "server" keeps the
	// server's setting.
	MaintenanceWorkMem string
	Tables             []string // include only these tables ("schema.table" or "table" for public)
	ExcludeTables      []string // leave these out
	SchemaOnly         bool
	DataOnly           bool
	SplitLargerThan    int64 // bytes; tables larger are split into page ranges; <0 never splits
	Checkpoint         string
	Resume             bool
	NoAnalyze          bool
	// NoPrivileges leaves GRANTs and default privileges out (privileges.go).
	NoPrivileges bool
	// Owners gives objects their source owners (the roles must exist on
	// the target); without it the migrating role owns everything.
	Owners bool

	// Export/Import location: a local directory or s3://bucket/prefix.
	Location string
	// S3 client settings when Location is s3:// (URL is taken from
	// Location; the same settings as files sync).
	S3 s3store.Options

	// PgDump overrides the pg_dump binary (default: newest installed).
	PgDump string

	Logger   *slog.Logger
	Progress io.Writer // a terminal for progress bars; nil logs progress lines instead
	// Meter, if set, receives the bytes streamed every second against the
	// tables' estimated size (its Snapshot then tells done, total and ETA),
	// and logs the progress lines instead of the plain ones.
	Meter *report.Spinner

	// Observer, if set, is told about the data phase as it goes
	// (--metrics-addr); observer.go.
	Observer Observer

	// testHookAfterList runs after the table list is read and before the
	// tables are locked (tests drop a table there).
	testHookAfterList func()
	// testHookPartLoaded runs after each part is committed on the target;
	// an error aborts the run (tests induce failures there).
	testHookPartLoaded func(p *Part) error
	// testHookCaughtUp runs after a catch-up committed on the target and
	// before the checkpoint records it; an error aborts the run.
	testHookCaughtUp func() error
}

func (o *Options) fill() error {
	if o.Jobs <= 0 {
		o.Jobs = DefaultJobs
	}
	if o.IndexJobs <= 0 {
		o.IndexJobs = DefaultIndexJobs
	}
	if o.SplitLargerThan == 0 {
		o.SplitLargerThan = DefaultSplitLargerThan
	}
	if o.Checkpoint == "" {
		o.Checkpoint = DefaultCheckpoint
	}
	if o.MaintenanceWorkMem == "" {
		o.MaintenanceWorkMem = DefaultMaintenanceWorkMem
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.SchemaOnly && o.DataOnly {
		return fmt.Errorf("--schema-only and --data-only exclude each other")
	}
	return nil
}

// ParseSize parses "512MB", "1GB", "100kB", "1.5GiB" or a plain byte count.
// "0", "off" and "never" return -1 (never split).
func ParseSize(s string) (int64, error) {
	switch strings.TrimSpace(strings.ToUpper(s)) {
	case "0", "OFF", "NEVER", "NONE":
		return -1, nil
	}
	n, err := report.ParseBytes(s)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return -1, nil
	}
	return n, nil
}

// TableResult is one table's line in the summary and report.
type TableResult struct {
	Schema  string  `json:"schema"`
	Name    string  `json:"name"`
	Parts   int     `json:"parts"`
	Rows    int64   `json:"rows"`
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	Resumed int     `json:"parts_already_done,omitempty"`
}

// Result is what Copy, Export and Import report.
type Result struct {
	Command       string        `json:"command"`
	Source        string        `json:"source,omitempty"` // redacted
	Target        string        `json:"target,omitempty"` // redacted
	Location      string        `json:"location,omitempty"`
	Snapshot      string        `json:"snapshot,omitempty"` // pg_current_snapshot() of the copy: tick 0
	SnapshotID    string        `json:"snapshot_id,omitempty"`
	Baseline      bool          `json:"baseline_recorded"`
	Started       time.Time     `json:"started"`
	Finished      time.Time     `json:"finished"`
	Seconds       float64       `json:"seconds"`
	Tables        []TableResult `json:"tables"`
	Rows          int64         `json:"rows"`
	Bytes         int64         `json:"bytes"`
	Sequences     int           `json:"sequences"`
	PostDataItems int           `json:"post_data_items"`
	Warnings      []string      `json:"warnings,omitempty"`
	// Failures are items the run could not do although it finished (a
	// sequence it could not set): the command exits 2.
	Failures []string `json:"failures,omitempty"`

	// tableSnapshots: tables (partition roots) a resumed copy loaded in a
	// later snapshot than Snapshot (resume.go).
	tableSnapshots func() (map[[2]string]string, error)
}

// Summary returns the run's totals for the checkpoint's run history.
func (r *Result) Summary() map[string]any {
	return map[string]any{
		"tables": len(r.Tables), "rows": r.Rows, "bytes": r.Bytes,
		"sequences": r.Sequences, "snapshot": r.Snapshot, "seconds": r.Seconds,
	}
}
