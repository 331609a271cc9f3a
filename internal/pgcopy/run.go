package pgcopy

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/pgdelta"
	"github.com/kwick/kwickmig/internal/pgutil"
)

// The phases Copy and Import share: run state, schema, sequences, ANALYZE,
// the baseline, and the bounded worker pool over parts.

// runState is a copy's or import's progress beyond single parts.
type runState struct {
	Baseline string    `json:"baseline"` // pg_current_snapshot() of the first run: tick 0
	Started  time.Time `json:"started"`
	// CaptureOn: change capture was installed before the first run's
	// snapshot, so every later change is in the log. A resumed run keeps
	// the first run's answer (installing capture later leaves a gap).
	CaptureOn    bool `json:"capture_installed"`
	PreDataDone  bool `json:"pre_data_done"`
	DataDone     bool `json:"data_done"`
	PostDataDone bool `json:"post_data_done"`
}

// finishRun stamps the result and closes the checkpoint; the command that
// called Copy, Export or Import records the run (with its exit code and
// error) once the checkpoint is free again.
func finishRun(ck *checkpoint.DB, res *Result) {
	res.Finished = time.Now()
	res.Seconds = res.Finished.Sub(res.Started).Seconds()
	_ = ck.Close()
}

// loadState reads the run state when resuming, or starts a fresh one (the
// caller clears the earlier run's progress before its first write).
func loadState(ck *checkpoint.DB, section string, resume bool, snapshot string, captureOn bool) (*runState, error) {
	st := &runState{}
	if resume {
		if _, err := ck.GetJSON(section, "state", st); err != nil {
			return nil, fmt.Errorf("checkpoint: %w", err)
		}
	}
	if st.Baseline == "" {
		st.Baseline, st.Started, st.CaptureOn = snapshot, time.Now(), captureOn
	}
	return st, nil
}

func putState(ck *checkpoint.DB, section string, st *runState) error {
	if err := ck.PutJSON(section, "state", st); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// createSchema applies pre-data on a fresh connection after checking that
// none of the tables exists yet.
//
// With --table, pg_dump writes only the tables themselves: schemas, types
// and functions they use must exist on the target already, and a failure
// says so.
func createSchema(ctx context.Context, url string, dst *pgx.Conn, tables []*Table, pre *script, filtered, resume bool, beforeWrite func() error) error {
	existing, err := targetHasTables(ctx, dst, tables)
	if err != nil {
		return err
	}
	if resume && len(existing) == len(tables) && len(tables) > 0 {
		// pre-data is one transaction: the interrupted run committed it
		// but did not get to record it.
		return nil
	}
	if len(existing) > 0 {
		return fmt.Errorf("target: table %s already exists (%d of %d): use --data-only to load into an existing schema, or --resume to continue an earlier copy",
			existing[0], len(existing), len(tables))
	}
	if err := beforeWrite(); err != nil {
		return err
	}
	conn, err := connect(ctx, pgutil.Target, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	err = applyPreData(ctx, conn, pre)
	if err != nil && filtered {
		err = fmt.Errorf("%w (with --table only the tables themselves are created: create the schemas, types and functions they use first, "+
			"e.g. with a full --schema-only copy, then copy with --data-only --table)", err)
	}
	return err
}

// postPhase builds post-data: a table's indexes while other tables still
// load (earlyBuilds), the rest after all data. Each item is recorded in
// the checkpoint when built.
type postPhase struct {
	r       *postDataRunner
	s       *script
	early   *earlyBuilds
	log     *slog.Logger
	analyze bool // ANALYZE each table once its early builds are done
}

func newPostPhase(opts *Options, ck *checkpoint.DB, section string, s *script) *postPhase {
	r := &postDataRunner{targetURL: opts.TargetURL, jobs: opts.IndexJobs, workers: opts.IndexWorkers, workMem: opts.MaintenanceWorkMem, log: opts.Logger, resume: opts.Resume,
		done: func(key string) bool {
			var b bool
			ok, _ := ck.GetJSON(section, key, &b)
			return ok && b
		},
		markDone: func(key string) error { return ck.PutJSON(section, key, true) },
	}
	return &postPhase{r: r, s: s, log: opts.Logger, analyze: !opts.NoAnalyze && !opts.SchemaOnly}
}

// startEarly hooks the early builds to the data phase's progress.
func (pp *postPhase) startEarly(ctx context.Context, pr *progress) {
	pp.early = pp.r.startEarly(ctx, pp.s, pp.analyze)
	pr.onTableDone = pp.early.tableLoaded
}

// stop ends early builds left running by a failed run; idempotent.
func (pp *postPhase) stop() {
	if pp.early != nil {
		pp.early.stop()
	}
}

// run builds what is left and returns the number of items built.
func (pp *postPhase) run(ctx context.Context) (int, error) {
	start := time.Now()
	var n int
	var err error
	if pp.early != nil {
		n, err = pp.early.finish(ctx)
	} else {
		n, err = pp.r.apply(ctx, pp.s)
	}
	pp.log.Info("post-data built", "items", n, "seconds_after_data", fmt.Sprintf("%.1f", time.Since(start).Seconds()))
	return n, err
}

// loadAll runs a data phase: progress display, early index builds, the
// loads themselves, and the per-table totals in res.
func loadAll(ctx context.Context, opts *Options, what string, tables []*Table, post *postPhase, res *Result, load func(*progress) error) error {
	pr := newProgress(ctx, opts.Progress, opts.Logger, what, tables, opts.Meter)
	pr.obs = opts.Observer
	if post != nil {
		post.startEarly(ctx, pr)
	}
	err := load(pr)
	res.Tables = pr.finish(tables)
	for _, t := range res.Tables {
		res.Rows += t.Rows
		res.Bytes += t.Bytes
	}
	return err
}

// finishPhases runs what follows the data, for copy and import alike: the
// rest of post-data, materialized views, ANALYZE and the delta baseline.
func finishPhases(ctx context.Context, opts *Options, ck *checkpoint.DB, section string, dst *pgx.Conn, state *runState,
	post *postPhase, tables []*Table, matviews []string, captureOn bool, snapshot string, res *Result) error {
	if post != nil {
		n, err := post.run(ctx)
		res.PostDataItems = n
		if err != nil {
			return err
		}
		if err := refreshMatviews(ctx, dst, matviews); err != nil {
			return err
		}
		state.PostDataDone = true
		if err := putState(ck, section, state); err != nil {
			return err
		}
	}
	if opts.SchemaOnly {
		return nil
	}
	if !opts.NoAnalyze {
		if err := analyze(ctx, opts.TargetURL, opts.Jobs, tables, post); err != nil {
			return err
		}
	}
	var later map[[2]string]string
	if res.tableSnapshots != nil {
		var err error
		if later, err = res.tableSnapshots(); err != nil {
			return err
		}
	}
	ok, err := recordBaseline(ctx, opts.TargetURL, captureOn, snapshot, later, opts.Logger, &res.Warnings)
	if err != nil {
		return err
	}
	res.Baseline = ok
	return nil
}

// runParts feeds parts to jobs workers. Each worker sets up its own
// connections and then ranges over the channel; the first error stops all.
func runParts(ctx context.Context, jobs int, todo []*Part, worker func(ctx context.Context, parts <-chan *Part) error) error {
	if len(todo) == 0 {
		return nil
	}
	g, ctx := errgroup.WithContext(ctx)
	ch := make(chan *Part)
	g.Go(func() error {
		defer close(ch)
		for _, p := range todo {
			select {
			case ch <- p:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	for range min(jobs, len(todo)) {
		g.Go(func() error { return worker(ctx, ch) })
	}
	return g.Wait()
}

// setSequences sets each sequence on the target to its snapshot value.
func setSequences(ctx context.Context, dst *pgx.Conn, seqs []*Sequence, failures *[]string) error {
	for _, s := range seqs {
		_, err := dst.Exec(ctx, "SELECT pg_catalog.setval($1::regclass, $2, $3)", s.QName(), s.LastValue, s.IsCalled)
		if err != nil {
			*failures = append(*failures, fmt.Sprintf("sequence %s not set: %s", s.QName(), oneLine(err)))
		}
	}
	return nil
}

// analyze gives the target planner statistics for the copied tables.
// Tables the post-data phase analyzed already (post may be nil) are
// skipped. Partitioned tables above copied partitions are analyzed after
// them: autovacuum never analyzes a partitioned table, and queries on it
// plan with its own statistics.
func analyze(ctx context.Context, url string, jobs int, tables []*Table, post *postPhase) error {
	var todo, names []string
	for _, t := range tables {
		names = append(names, t.QName())
		if post == nil || post.early == nil || !post.early.wasAnalyzed(t) {
			todo = append(todo, t.QName())
		}
	}
	if err := analyzeAll(ctx, url, jobs, todo); err != nil {
		return err
	}
	conn, err := connect(ctx, pgutil.Target, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	rows, _ := conn.Query(ctx, `SELECT DISTINCT a.relid::regclass::text FROM unnest($1::text[]) t(name),
		pg_catalog.pg_partition_ancestors(t.name::regclass) a WHERE a.relid <> t.name::regclass`, names)
	parents, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("target: partitioned tables: %s", oneLine(err))
	}
	return analyzeAll(ctx, url, jobs, parents)
}

// analyzeAll runs ANALYZE on each table, jobs at a time.
func analyzeAll(ctx context.Context, url string, jobs int, qnames []string) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for _, q := range qnames {
		g.Go(func() error {
			conn, err := connect(ctx, pgutil.Target, url)
			if err != nil {
				return err
			}
			defer conn.Close(context.Background())
			if _, err := conn.Exec(ctx, "ANALYZE "+q); err != nil {
				return fmt.Errorf("target: analyze %s: %s", q, oneLine(err))
			}
			return nil
		})
	}
	return g.Wait()
}

// recordBaseline marks the snapshot as delta round 0 on the target when
// change capture was installed on the source before the snapshot.
//
// tables are the tables a resumed copy loaded in a later snapshot, recorded
// first: a baseline without them would let delta rounds apply their
// changes twice.
func recordBaseline(ctx context.Context, url string, captureOn bool, snapshot string, tables map[[2]string]string, log interface {
	Warn(string, ...any)
	Info(string, ...any)
}, warnings *[]string) (bool, error) {
	if !captureOn {
		msg := "change capture was not installed on the source before the copy: final-delta will not be possible from this copy (run `kwickmig db capture install` and copy again)"
		log.Warn(msg)
		*warnings = append(*warnings, msg)
		return false, nil
	}
	conn, err := pgutil.Connect(ctx, pgutil.Target, url)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	if err := pgdelta.RecordTableSnapshots(ctx, conn, tables); err != nil {
		return false, err
	}
	if err := pgdelta.RecordBaseline(ctx, conn, snapshot); err != nil {
		return false, err
	}
	log.Info("baseline recorded for final-delta", "snapshot", snapshot)
	return true, nil
}
