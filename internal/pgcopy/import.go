package pgcopy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/klauspost/compress/zstd"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/filestore"
	"github.com/kwick/kwickmig/internal/pgutil"
)

// Import loads an export written by Export into the target. Every file's
// size and SHA-256 are checked against the manifest before it is loaded;
// progress is kept per part in the checkpoint, so opts.Resume continues an
// interrupted import.
func Import(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	res := &Result{Command: "db import", Target: pgutil.Redact(opts.TargetURL), Location: opts.Location, Started: time.Now()}
	ck, err := checkpoint.Open(opts.Checkpoint)
	if err != nil {
		return nil, err
	}
	err = runImport(ctx, &opts, ck, res)
	finishRun(ck, res)
	return res, err
}

// readManifest loads and sanity-checks manifest.json.
func readManifest(ctx context.Context, st filestore.Store) (*Manifest, error) {
	data, err := st.Read(ctx, manifestKey)
	if err != nil {
		return nil, fmt.Errorf("%s: no readable manifest.json (not an export, or the export did not finish): %s", st, oneLine(err))
	}
	man := &Manifest{}
	if err := json.Unmarshal(data, man); err != nil {
		return nil, fmt.Errorf("%s: manifest.json is damaged: %s", st, oneLine(err))
	}
	if man.Version != 1 {
		return nil, fmt.Errorf("%s: manifest version %d is not supported by this kwickmig", st, man.Version)
	}
	return man, nil
}

func runImport(ctx context.Context, opts *Options, ck *checkpoint.DB, res *Result) error {
	log := opts.Logger
	st, err := openExportStore(ctx, opts, false)
	if err != nil {
		return err
	}
	man, err := readManifest(ctx, st)
	if err != nil {
		return err
	}
	res.Snapshot, res.SnapshotID, res.Source = man.Snapshot, man.SnapshotID, man.Source.URL
	dst, err := connect(ctx, pgutil.Target, opts.TargetURL)
	if err != nil {
		return err
	}
	defer dst.Close(context.Background())
	if err := ck.Bind(sectionBind, dbIdentity(man.Source.SystemID, man.Source.Database, targetIdentity(dst))); err != nil {
		return err
	}
	state, err := loadState(ck, sectionImport, opts.Resume, man.Snapshot, man.CaptureInstalled)
	if err != nil {
		return err
	}
	if state.Baseline != man.Snapshot {
		return fmt.Errorf("checkpoint %s records an import of another export (snapshot %s, this one %s): use another --checkpoint",
			ck.Path(), state.Baseline, man.Snapshot)
	}
	fresh := !opts.Resume
	reset := func() error {
		if !fresh {
			return nil
		}
		fresh = false
		if err := ck.DeleteSection(sectionImport); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		return putState(ck, sectionImport, state)
	}

	var all []*Table
	files := map[*Part]ManifestPart{}
	for _, mt := range man.Tables {
		t := &Table{Schema: mt.Schema, Name: mt.Name, Columns: mt.Columns, Binary: mt.Binary}
		for i, mp := range mt.Parts {
			p := &Part{Table: t, Index: i, Count: len(mt.Parts), From: mp.From, To: mp.To}
			t.Parts = append(t.Parts, p)
			t.Size += mp.Bytes
			files[p] = mp
		}
		all = append(all, t)
	}
	tables, err := filterTables(all, opts.Tables, opts.ExcludeTables)
	if err != nil {
		return fmt.Errorf("%s: %w", st, err)
	}

	var post *postPhase
	defer func() {
		if post != nil {
			post.stop()
		}
	}()
	if man.PostData != nil && !opts.DataOnly && !state.PostDataDone {
		text, err := readSmall(ctx, st, *man.PostData)
		if err != nil {
			return err
		}
		post = newPostPhase(opts, ck, sectionImport, opts.schemaScript(string(text)))
	}
	if !opts.DataOnly && (!state.PreDataDone || !state.PostDataDone) {
		need := man.Roles
		if opts.NoPrivileges && need != nil {
			// Without the privileges only ownerships need roles; the
			// manifest does not tell owners from default-privilege roles,
			// so with --owners all are kept.
			need = &RoleNeeds{}
			if man.Owners {
				need.ActAs = man.Roles.ActAs
			}
		}
		if err := checkRoles(ctx, dst, need); err != nil {
			return err
		}
	}
	if man.PreData != nil && !opts.DataOnly && !state.PreDataDone {
		text, err := readSmall(ctx, st, *man.PreData)
		if err != nil {
			return err
		}
		if err := createSchema(ctx, opts.TargetURL, dst, tables, opts.schemaScript(string(text)), len(man.TableFilter) > 0, opts.Resume, reset); err != nil {
			return err
		}
		state.PreDataDone = true
		if err := putState(ck, sectionImport, state); err != nil {
			return err
		}
		log.Info("schema created (pre-data)", "tables", len(tables))
	}
	if !opts.SchemaOnly {
		l := &loader{ck: ck, section: sectionImport, freeze: !opts.DataOnly, snapshot: man.Snapshot}
		if err := l.reconcile(ctx, dst, tables, opts.Resume); err != nil {
			return err
		}
		truncated, err := checkTargets(ctx, dst, tables, opts.Resume)
		if err != nil {
			return err
		}
		if err := reset(); err != nil {
			return err
		}
		for _, t := range truncated {
			log.Warn("resume: truncated half-loaded table", "table", t)
		}
		if err := loadAll(ctx, opts, "import", tables, post, res, func(pr *progress) error {
			return importData(ctx, opts, st, l, tables, files, pr)
		}); err != nil {
			return err
		}
		if err := setSequences(ctx, dst, man.Sequences, &res.Failures); err != nil {
			return err
		}
		res.Sequences = len(man.Sequences)
		state.DataDone = true
		if err := putState(ck, sectionImport, state); err != nil {
			return err
		}
	}
	matviews := man.Matviews
	if len(opts.Tables) > 0 {
		matviews = nil // a filtered import may lack what they read
	}
	return finishPhases(ctx, opts, ck, sectionImport, dst, state, post, tables, matviews,
		man.CaptureInstalled, man.Snapshot, res)
}

// importData loads every unfinished part with opts.Jobs workers.
func importData(ctx context.Context, opts *Options, st filestore.Store, l *loader, tables []*Table, files map[*Part]ManifestPart, pr *progress) error {
	todo := schedule(tables, func(p *Part) bool {
		if p.state.Done {
			pr.partDone(p, true)
		}
		return p.state.Done
	})
	return runParts(ctx, opts.Jobs, todo, func(ctx context.Context, parts <-chan *Part) error {
		dst, err := openLoadConn(ctx, opts.TargetURL, opts.DataOnly)
		if err != nil {
			return err
		}
		defer dst.Close(context.Background())
		for p := range parts {
			if err := importPart(ctx, st, dst, l, p, files[p], pr); err != nil {
				return err
			}
			if opts.testHookPartLoaded != nil {
				if err := opts.testHookPartLoaded(p); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// readRecorder remembers the first read error of the file side, so it is
// reported as such rather than as the target's "COPY from stdin failed".
type readRecorder struct {
	r   io.Reader
	err error
}

func (rr *readRecorder) Read(b []byte) (int, error) {
	n, err := rr.r.Read(b)
	if err != nil && err != io.EOF && rr.err == nil {
		rr.err = err
	}
	return n, err
}

// importPart verifies one file and loads it.
func importPart(ctx context.Context, st filestore.Store, dst *pgx.Conn, l *loader, p *Part, mp ManifestPart, pr *progress) error {
	pr.partStarted(p)
	start := time.Now()
	path, cleanup, err := st.Fetch(ctx, mp.File)
	if err != nil {
		return err
	}
	defer cleanup()
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	dec, err := zstd.NewReader(bufio.NewReaderSize(f, 1<<20), zstd.WithDecoderConcurrency(1))
	if err != nil {
		return err
	}
	defer dec.Close()
	var n countWriter
	rr := &readRecorder{r: io.TeeReader(dec, io.MultiWriter(&n, pr))}
	rows, err := l.load(ctx, dst, p, rr, func(copyErr error) (int64, error) {
		if rr.err != nil {
			return -1, fmt.Errorf("export file %s (%s): %s", mp.File.Key, p, oneLine(rr.err))
		}
		return mp.Rows, nil
	})
	if err != nil {
		return err
	}
	if err := l.done(p, rows, int64(n), time.Since(start)); err != nil {
		return err
	}
	pr.partDone(p, false)
	return nil
}
