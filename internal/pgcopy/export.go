package pgcopy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/klauspost/compress/zstd"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/filestore"
	"github.com/kwick/kwickmig/internal/pgdelta"
	"github.com/kwick/kwickmig/internal/pgutil"
)

// manifestKey is written last: an export without it is incomplete.
const manifestKey = "manifest.json"

// Manifest describes an export: what db import needs and checks.
type Manifest struct {
	Version          int            `json:"version"`
	Created          time.Time      `json:"created"`
	Source           ManifestSource `json:"source"`
	Snapshot         string         `json:"snapshot"` // pg_current_snapshot() in the export's snapshot: tick 0
	SnapshotID       string         `json:"snapshot_id"`
	CaptureInstalled bool           `json:"capture_installed"` // change capture was on before the snapshot
	PreData          *FileEntry     `json:"pre_data,omitempty"`
	PostData         *FileEntry     `json:"post_data,omitempty"`
	Matviews         []string       `json:"materialized_views,omitempty"`
	TableFilter      []string       `json:"table_filter,omitempty"` // --table given to the export
	// Roles are the roles the schema's privileges and (export --owners)
	// ownerships name: import checks the target has them.
	Roles     *RoleNeeds       `json:"roles,omitempty"`
	Owners    bool             `json:"owners,omitempty"`
	Tables    []ManifestTable  `json:"tables"`
	Sequences []*Sequence      `json:"sequences"`
	Totals    ManifestTotalRow `json:"totals"`
}

// ManifestSource identifies the exported database (no secrets).
type ManifestSource struct {
	SystemID      string `json:"system_identifier"`
	Database      string `json:"database"`
	ServerVersion int    `json:"server_major_version"`
	URL           string `json:"url"` // redacted
}

// ManifestTable is one table and its files.
type ManifestTable struct {
	Schema  string         `json:"schema"`
	Name    string         `json:"name"`
	Columns []Column       `json:"columns"`
	Binary  bool           `json:"binary"`
	Parts   []ManifestPart `json:"parts"`
}

// ManifestPart is one part's file: zstd-compressed COPY data.
type ManifestPart struct {
	From  int64     `json:"from_page"`
	To    int64     `json:"to_page"` // 0: to the end
	Rows  int64     `json:"rows"`
	Bytes int64     `json:"copy_bytes"` // uncompressed
	File  FileEntry `json:"file"`
}

// ManifestTotalRow sums the parts.
type ManifestTotalRow struct {
	Rows  int64 `json:"rows"`
	Bytes int64 `json:"copy_bytes"`
	Size  int64 `json:"file_bytes"`
}

// Export writes the source database, as of one snapshot, to a directory or
// bucket: pg_dump's pre-data and post-data scripts, one zstd-compressed
// COPY file per table or range, and manifest.json last.
func Export(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	res := &Result{Command: "db export", Source: pgutil.Redact(opts.SourceURL), Location: opts.Location, Started: time.Now()}
	ck, err := checkpoint.Open(opts.Checkpoint)
	if err != nil {
		return nil, err
	}
	err = runExport(ctx, &opts, res)
	finishRun(ck, res)
	return res, err
}

func runExport(ctx context.Context, opts *Options, res *Result) error {
	log := opts.Logger
	st, err := openExportStore(ctx, opts, true)
	if err != nil {
		return err
	}
	if ok, err := st.Exists(ctx, manifestKey); err != nil {
		return fmt.Errorf("%s: %w", st, err)
	} else if ok {
		return fmt.Errorf("%s already holds an export (manifest.json): export to an empty location", st)
	}
	var captureOn bool
	coord, err := openCoordinator(ctx, opts.SourceURL, func(c *pgx.Conn) (err error) {
		captureOn, err = pgdelta.CaptureInstalled(ctx, c)
		return err
	})
	if err != nil {
		return err
	}
	defer coord.close()
	res.Snapshot, res.SnapshotID = coord.snapshot, coord.snapshotID
	if !captureOn {
		msg := "change capture was not installed on the source before the export: final-delta will not be possible from this export"
		log.Warn(msg)
		res.Warnings = append(res.Warnings, msg)
	}
	man := &Manifest{Version: 1, Created: time.Now().UTC(), Snapshot: coord.snapshot, SnapshotID: coord.snapshotID,
		CaptureInstalled: captureOn, TableFilter: opts.Tables, Source: ManifestSource{SystemID: coord.sysID, Database: coord.dbName,
			ServerVersion: coord.major, URL: pgutil.Redact(opts.SourceURL)}}
	tables, excluded, err := listTables(ctx, coord.conn, opts.Tables, opts.ExcludeTables)
	if err != nil {
		return err
	}
	if captureOn {
		if err := checkCapturedSet(ctx, coord.conn, tables); err != nil {
			return err
		}
	}
	if err := lockTables(ctx, coord.conn, tables); err != nil {
		return err
	}
	if man.Sequences, err = listSequences(ctx, coord.conn, tables, len(opts.Tables) > 0); err != nil {
		return err
	}
	if !opts.DataOnly {
		if man.Roles, err = opts.sourceRoles(ctx, coord.conn, tables, excluded); err != nil {
			return err
		}
		man.Owners = opts.Owners
		dump, err := findPgDump(opts.PgDump, coord.major)
		if err != nil {
			return err
		}
		args := dumpArgs{snapshotID: coord.snapshotID, exclude: excluded, noPrivileges: opts.NoPrivileges, owners: opts.Owners}
		if len(opts.Tables) > 0 {
			args.include, args.exclude = tables, nil
		} else if man.Matviews, err = listMatviews(ctx, coord.conn); err != nil {
			return err
		}
		texts, err := dump.sections(ctx, opts.SourceURL, args, "pre-data", "post-data")
		if err != nil {
			return err
		}
		for i, sec := range []struct {
			name string
			dst  **FileEntry
		}{{"pre-data", &man.PreData}, {"post-data", &man.PostData}} {
			text := texts[i]
			e, err := st.Write(ctx, "schema/"+sec.name+".sql", func(w io.Writer) error {
				_, err := io.WriteString(w, text)
				return err
			})
			if err != nil {
				return fmt.Errorf("write %s: %w", sec.name, err)
			}
			*sec.dst = &e
		}
	}
	if !opts.SchemaOnly {
		if err := planParts(nil, "", tables, opts.SplitLargerThan, coord.blockSize, false); err != nil {
			return err
		}
		pr := newProgress(ctx, opts.Progress, log, "export", tables, opts.Meter)
		parts, err := exportData(ctx, opts, coord.snapshotID, st, tables, pr)
		res.Tables = pr.finish(tables)
		for _, t := range res.Tables {
			res.Rows += t.Rows
			res.Bytes += t.Bytes
		}
		if err != nil {
			return err
		}
		for i, t := range tables {
			mt := ManifestTable{Schema: t.Schema, Name: t.Name, Columns: t.Columns, Binary: t.Binary, Parts: parts[i]}
			for _, p := range mt.Parts {
				man.Totals.Rows += p.Rows
				man.Totals.Bytes += p.Bytes
				man.Totals.Size += p.File.Size
			}
			man.Tables = append(man.Tables, mt)
		}
	}
	res.Sequences = len(man.Sequences)
	data, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return err
	}
	if _, err := st.Write(ctx, manifestKey, func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	log.Info("export written", "location", st.String(), "files", len(man.Tables), "compressed_bytes", man.Totals.Size)
	return nil
}

// dataKey names a part's file by position, so no identifier reaches a path.
func dataKey(table, part int) string { return fmt.Sprintf("data/%05d.%04d.copy.zst", table, part) }

// exportData writes every part with opts.Jobs workers and returns the
// manifest entries per table, in table order.
func exportData(ctx context.Context, opts *Options, snapshotID string, st filestore.Store, tables []*Table, pr *progress) ([][]ManifestPart, error) {
	out := make([][]ManifestPart, len(tables))
	index := map[*Table]int{}
	for i, t := range tables {
		out[i] = make([]ManifestPart, len(t.Parts))
		index[t] = i
	}
	var mu sync.Mutex
	todo := schedule(tables, func(*Part) bool { return false })
	err := runParts(ctx, opts.Jobs, todo, func(ctx context.Context, parts <-chan *Part) error {
		src, err := openSnapshotWorker(ctx, opts.SourceURL, snapshotID)
		if err != nil {
			return err
		}
		defer src.Close(context.Background())
		for p := range parts {
			ti := index[p.Table]
			mp, err := exportPart(ctx, src, st, p, dataKey(ti, p.Index), pr)
			if err != nil {
				return err
			}
			mu.Lock()
			out[ti][p.Index] = mp
			mu.Unlock()
		}
		return nil
	})
	return out, err
}

// exportPart streams one part through zstd into the store.
func exportPart(ctx context.Context, src *pgx.Conn, st filestore.Store, p *Part, key string, pr *progress) (ManifestPart, error) {
	pr.partStarted(p)
	start := time.Now()
	var rows int64
	var n countWriter
	e, err := st.Write(ctx, key, func(w io.Writer) error {
		enc, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
		if err != nil {
			return err
		}
		bw := bufio.NewWriterSize(io.MultiWriter(enc, &n, pr), copyBufferSize)
		tag, err := src.PgConn().CopyTo(ctx, bw, p.sourceSQL())
		if err != nil {
			enc.Close()
			return fmt.Errorf("source: read %s: %s", p, oneLine(err))
		}
		rows = tag.RowsAffected()
		if err := bw.Flush(); err != nil {
			enc.Close()
			return err
		}
		return enc.Close()
	})
	if err != nil {
		if !strings.HasPrefix(err.Error(), "source:") {
			err = fmt.Errorf("write %s to %s: %w", p, st, err)
		}
		return ManifestPart{}, err
	}
	p.state = partState{Done: true, Rows: rows, Bytes: int64(n), Seconds: time.Since(start).Seconds()}
	pr.partDone(p, false)
	return ManifestPart{From: p.From, To: p.To, Rows: rows, Bytes: int64(n), File: e}, nil
}
