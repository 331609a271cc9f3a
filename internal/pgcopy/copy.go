package pgcopy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/pgdelta"
	"github.com/kwick/kwickmig/internal/pgutil"
)

// Checkpoint sections: "db" is bound to the source/target pairing; db copy
// keeps its progress in "dbcopy", db import in "dbimport".
const (
	sectionBind   = "db"
	sectionCopy   = "dbcopy"
	sectionImport = "dbimport"
)

// Copy copies the source database to the target as of one snapshot. See
// the package comment for the phases; opts.Resume continues an earlier run
// recorded in opts.Checkpoint.
func Copy(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	res := &Result{Command: "db copy", Source: pgutil.Redact(opts.SourceURL), Target: pgutil.Redact(opts.TargetURL), Started: time.Now()}
	ck, err := checkpoint.Open(opts.Checkpoint)
	if err != nil {
		return nil, err
	}
	err = runCopy(ctx, &opts, ck, res)
	finishRun(ck, res)
	return res, err
}

func runCopy(ctx context.Context, opts *Options, ck *checkpoint.DB, res *Result) error {
	log := opts.Logger
	dst, err := connect(ctx, pgutil.Target, opts.TargetURL)
	if err != nil {
		return err
	}
	defer dst.Close(context.Background())
	var captureOn bool
	coord, err := openCoordinator(ctx, opts.SourceURL, func(c *pgx.Conn) (err error) {
		captureOn, err = pgdelta.CaptureInstalled(ctx, c)
		return err
	})
	if err != nil {
		return err
	}
	defer coord.close()
	if err := ck.Bind(sectionBind, dbIdentity(coord.sysID, coord.dbName, targetIdentity(dst))); err != nil {
		return err
	}
	state, err := loadState(ck, sectionCopy, opts.Resume, coord.snapshot, captureOn)
	if err != nil {
		return err
	}
	// A fresh run forgets an earlier run's progress only once its checks
	// passed and it is about to write to the target.
	fresh := !opts.Resume
	reset := func() error {
		if !fresh {
			return nil
		}
		fresh = false
		if err := ck.DeleteSection(sectionCopy); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		return putState(ck, sectionCopy, state)
	}
	if state.Baseline != coord.snapshot {
		res.Warnings = append(res.Warnings, "resumed: tables finished by earlier runs are from an earlier snapshot; "+
			"final-delta starts from the first run's snapshot "+state.Baseline)
	}
	res.Snapshot, res.SnapshotID = state.Baseline, coord.snapshotID
	log.Info("snapshot exported", "snapshot", coord.snapshot, "id", coord.snapshotID, "capture_installed", captureOn)

	tables, excluded, err := listTables(ctx, coord.conn, opts.Tables, opts.ExcludeTables)
	if err != nil {
		return err
	}
	if captureOn {
		if err := checkCapturedSet(ctx, coord.conn, tables); err != nil {
			return err
		}
	}
	if opts.testHookAfterList != nil {
		opts.testHookAfterList()
	}
	if err := lockTables(ctx, coord.conn, tables); err != nil {
		return err
	}
	seqs, err := listSequences(ctx, coord.conn, tables, len(opts.Tables) > 0)
	if err != nil {
		return err
	}

	var post *postPhase
	defer func() {
		if post != nil {
			post.stop()
		}
	}()
	var matviews []string
	if !opts.DataOnly {
		if !state.PreDataDone || !state.PostDataDone {
			need, err := opts.sourceRoles(ctx, coord.conn, tables, excluded)
			if err != nil {
				return err
			}
			if err := checkRoles(ctx, dst, need); err != nil {
				return err
			}
		}
		dump, err := findPgDump(opts.PgDump, coord.major)
		if err != nil {
			return err
		}
		args := dumpArgs{snapshotID: coord.snapshotID, exclude: excluded, noPrivileges: opts.NoPrivileges, owners: opts.Owners}
		if len(opts.Tables) > 0 {
			args.include, args.exclude = tables, nil
		} else if matviews, err = listMatviews(ctx, coord.conn); err != nil {
			return err
		}
		texts, err := dump.sections(ctx, opts.SourceURL, args, "pre-data", "post-data")
		if err != nil {
			return err
		}
		if !state.PostDataDone {
			post = newPostPhase(opts, ck, sectionCopy, opts.schemaScript(texts[1]))
		}
		if !state.PreDataDone {
			if err := createSchema(ctx, opts.TargetURL, dst, tables, opts.schemaScript(texts[0]), len(opts.Tables) > 0, opts.Resume, reset); err != nil {
				return err
			}
			state.PreDataDone = true
			if err := putState(ck, sectionCopy, state); err != nil {
				return err
			}
			log.Info("schema created (pre-data)", "tables", len(tables))
		}
	}

	var units map[*Table]unit
	var catchUp func(context.Context) error // resume.go
	if !opts.SchemaOnly {
		if err := planParts(ck, sectionCopy, tables, opts.SplitLargerThan, coord.blockSize, opts.Resume); err != nil {
			return err
		}
		l := &loader{ck: ck, section: sectionCopy, freeze: !opts.DataOnly, snapshot: coord.snapshot}
		if err := l.reconcile(ctx, dst, tables, opts.Resume); err != nil {
			return err
		}
		if units, err = partitionRoots(ctx, coord.conn, tables); err != nil {
			return err
		}
		if err := l.followCatchUps(ctx, dst, tables, units, state.Baseline); err != nil {
			return err
		}
		redone, err := l.settleUnits(ctx, dst, tables, units, state.Baseline)
		if err != nil {
			return err
		}
		for _, t := range redone {
			log.Warn("resume: reloading table whole, its finished parts are from an earlier snapshot", "table", t)
		}
		if state.CaptureOn && captureOn {
			plan := l.catchUpPlan(tables, units, state.Baseline)
			catchUp = func(ctx context.Context) error { return l.catchUp(ctx, opts, tables, units, plan, &res.Warnings) }
			if post != nil {
				post.r.afterIndexes = catchUp
			}
		}
		truncated, err := checkTargets(ctx, dst, tables, opts.Resume)
		if err != nil {
			return err
		}
		if err := reset(); err != nil {
			return err
		}
		if err := savePlans(ck, sectionCopy, tables); err != nil {
			return err
		}
		for _, t := range truncated {
			log.Warn("resume: truncated half-loaded table", "table", t)
		}
		if err := loadAll(ctx, opts, "copy", tables, post, res, func(pr *progress) error {
			return copyData(ctx, opts, coord.snapshotID, l, tables, pr)
		}); err != nil {
			return err
		}
		if catchUp != nil && post == nil {
			if err := catchUp(ctx); err != nil {
				return err
			}
		}
		if err := setSequences(ctx, dst, seqs, &res.Failures); err != nil {
			return err
		}
		res.Sequences = len(seqs)
		state.DataDone = true
		if err := putState(ck, sectionCopy, state); err != nil {
			return err
		}
		// After the catch-up, which may move units forward.
		res.tableSnapshots = func() (map[[2]string]string, error) { return unitSnapshots(tables, units, state.Baseline) }
	}
	// The snapshot has served; release the source's locks before the
	// index builds.
	coord.close()

	return finishPhases(ctx, opts, ck, sectionCopy, dst, state, post, tables, matviews,
		state.CaptureOn && captureOn, state.Baseline, res)
}

// copyData streams every unfinished part from the source snapshot to the
// target with opts.Jobs workers, largest parts first.
func copyData(ctx context.Context, opts *Options, snapshotID string, l *loader, tables []*Table, pr *progress) error {
	todo := schedule(tables, func(p *Part) bool {
		if p.state.Done {
			pr.partDone(p, true)
		}
		return p.state.Done
	})
	return runParts(ctx, opts.Jobs, todo, func(ctx context.Context, parts <-chan *Part) error {
		src, err := openSnapshotWorker(ctx, opts.SourceURL, snapshotID)
		if err != nil {
			return err
		}
		defer src.Close(context.Background())
		dst, err := openLoadConn(ctx, opts.TargetURL, opts.DataOnly)
		if err != nil {
			return err
		}
		defer dst.Close(context.Background())
		for p := range parts {
			if err := copyPart(ctx, src, dst, l, p, pr); err != nil {
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

// openLoadConn opens a target connection for COPY. With --data-only the
// schema's triggers and foreign keys exist already; session_replication_role
// = replica keeps them from firing (and from ordering the loads), where the
// role may set it.
func openLoadConn(ctx context.Context, url string, dataOnly bool) (*pgx.Conn, error) {
	conn, err := connect(ctx, pgutil.Target, url)
	if err != nil {
		return nil, err
	}
	if dataOnly {
		_ = conn.PgConn().Exec(ctx, "SET session_replication_role = replica").Close()
	}
	return conn, nil
}

type copyResult struct {
	rows int64
	err  error
}

// copyPart pipes COPY TO on the source into COPY FROM on the target.
func copyPart(ctx context.Context, src, dst *pgx.Conn, l *loader, p *Part, pr *progress) error {
	pr.partStarted(p)
	start := time.Now()
	pipeR, pipeW := io.Pipe()
	// If the load fails before reading everything, unblock the reader side.
	defer pipeR.CloseWithError(errPartAborted)
	var bytes countWriter
	done := make(chan copyResult, 1)
	go func() {
		// The server sends one message per row: batch them, so the pipe
		// and the target connection move large chunks, not rows.
		bw := bufio.NewWriterSize(io.MultiWriter(pipeW, &bytes, pr), copyBufferSize)
		tag, err := src.PgConn().CopyTo(ctx, bw, p.sourceSQL())
		if err == nil {
			err = bw.Flush()
		}
		pipeW.CloseWithError(err)
		done <- copyResult{tag.RowsAffected(), err}
	}()
	rows, err := l.load(ctx, dst, p, pipeR, func(copyErr error) (int64, error) {
		if copyErr != nil {
			pipeR.CloseWithError(copyErr)
		}
		r := <-done
		if r.err != nil && r.err != copyErr {
			return -1, fmt.Errorf("source: read %s: %s", p, oneLine(r.err))
		}
		return r.rows, nil
	})
	if err != nil {
		return err
	}
	if err := l.done(p, rows, int64(bytes), time.Since(start)); err != nil {
		return err
	}
	pr.partDone(p, false)
	return nil
}

var errPartAborted = errors.New("part aborted")

// copyBufferSize batches COPY rows between the two connections.
const copyBufferSize = 256 << 10

type countWriter int64

func (c *countWriter) Write(b []byte) (int, error) { *c += countWriter(len(b)); return len(b), nil }
