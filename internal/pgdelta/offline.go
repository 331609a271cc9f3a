package pgdelta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Export writes one new round of captured changes to st as numbered,
// checksummed batch files (final-delta --out), for a target the source side
// cannot reach. Round k holds the changes visible in tick k and not in the
// last exported tick; the source remembers exported ticks, so the next
// export continues where this one ended. The target drops the changes its
// baseline already holds when importing.
func Export(ctx context.Context, source *pgx.Conn, st BatchStore, opts Options) (Result, error) {
	opts.fill()
	var res Result
	if _, err := prepare(ctx, source, nil); err != nil {
		return res, err
	}
	caps, err := capturedTables(ctx, source)
	if err != nil {
		return res, err
	}
	if err := advisoryLock(ctx, source, "source"); err != nil {
		return res, err
	}
	defer source.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(lockKey)) //nolint:errcheck
	if err := checkTickMode(ctx, source, modeOffline); err != nil {
		return res, err
	}
	takeover, err := followPartitionsWatermarked(ctx, source, nil) // partitions.go, takeover.go
	if err != nil {
		return res, err
	}
	prev, round, err := lastDoneTick(ctx, source)
	if err != nil {
		return res, err
	}
	if prev == "" {
		prev = emptySnapshot
	}
	// A manifest beyond the last exported round means an earlier export
	// wrote it but could not record it on the source: adopt it.
	for {
		m, ok, err := readManifest(ctx, st, round+1)
		if err != nil {
			return res, err
		}
		if !ok {
			break
		}
		var id int64
		err = source.QueryRow(ctx, `SELECT id FROM kwickmig.tick WHERE mode = 'offline' AND state = 'taken' AND snapshot::text = $1`,
			m.Tick).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) || m.PrevTick != prev {
			return res, fmt.Errorf("%s already holds round %d from another export (tick %s); use an empty --out location", st, round+1, m.Tick)
		}
		if err != nil {
			return res, fmt.Errorf("source: read ticks: %w", err)
		}
		if err := markTick(ctx, source, id, m.Round, "exported"); err != nil {
			return res, err
		}
		opts.Logger.Info("adopted round written by an interrupted export", "round", m.Round)
		prev, round = m.Tick, m.Round
	}
	start := time.Now()
	tickID, tick, err := takeTick(ctx, source, modeOffline)
	if err != nil {
		return res, err
	}
	round++
	cfg := source.Config()
	m := manifest{Format: batchFormat, Round: round, Tick: tick, PrevTick: prev, Takeover: takeover,
		Source: fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database), Created: time.Now().UTC().Format(time.RFC3339)}
	for _, c := range caps {
		cols, err := tableColumns(ctx, source, c.Schema, c.Name)
		if err != nil {
			return res, fmt.Errorf("source: read columns of %s: %w", c.display(), err)
		}
		mt := manifestTable{TID: c.TID, Schema: c.Schema, Name: c.Name, Key: c.Key, Logged: c.Cols}
		for _, col := range cols {
			mt.Columns = append(mt.Columns, col.Name)
		}
		m.Tables = append(m.Tables, mt)
	}
	if err := completeManifest(ctx, source, &m); err != nil {
		return res, err
	}
	rr := RoundResult{Round: round, Tick: tick, Prev: prev}
	err = scanRound(ctx, source, prev, tick, 0, opts.BatchRows, func(rows []logRow) error {
		if len(rows) == 0 {
			return nil
		}
		data, err := encodePart(rows)
		if err != nil {
			return err
		}
		p := manifestPart{Part: len(m.Parts) + 1, Rows: int64(len(rows)), Bytes: int64(len(data)), SHA256: sha256Hex(data)}
		p.File = partName(round, p.Part)
		if err := st.Put(ctx, p.File, data); err != nil {
			return fmt.Errorf("%s: write %s: %w", st, p.File, err)
		}
		m.Parts = append(m.Parts, p)
		m.Rows += p.Rows
		rr.Bytes += p.Bytes
		if opts.OnBatch != nil {
			opts.OnBatch(len(rows))
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	if !opts.SkipSequences {
		if m.Sequences, err = sourceSequences(ctx, source); err != nil {
			return res, err
		}
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return res, err
	}
	if err := st.Put(ctx, manifestName(round), data); err != nil {
		return res, fmt.Errorf("%s: write %s: %w", st, manifestName(round), err)
	}
	if err := markTick(ctx, source, tickID, round, "exported"); err != nil {
		return res, err
	}
	rr.Rows, rr.Files, rr.Seconds = m.Rows, len(m.Parts), time.Since(start).Seconds()
	opts.Logger.Info("round exported", "round", round, "rows", rr.Rows, "files", rr.Files, "to", st.String())
	res.add(rr)
	return res, nil
}

// Import applies the rounds in st that the target has not applied yet, in
// round order, each part file in its own target transaction together with
// its row in kwickmig.batches: every part applies exactly once, however
// often import runs. Changes the target's baseline already holds are
// skipped. Finally the sequences are set to the last round's values.
func Import(ctx context.Context, target *pgx.Conn, st BatchStore, opts Options) (Result, error) {
	opts.fill()
	var res Result
	if err := ensureTarget(ctx, target); err != nil {
		return res, err
	}
	if err := advisoryLock(ctx, target, "target"); err != nil {
		return res, err
	}
	defer target.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(lockKey)) //nolint:errcheck
	baseText, err := baseline(ctx, target)
	if err != nil {
		return res, err
	}
	base, err := parseSnapshot(baseText)
	if err != nil {
		return res, fmt.Errorf("target: baseline: %w", err)
	}
	var direct bool
	if err := target.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM kwickmig.rounds WHERE mode = 'direct')`).Scan(&direct); err != nil {
		return res, fmt.Errorf("target: read delta rounds: %w", err)
	}
	if direct {
		return res, fmt.Errorf("target: earlier rounds were applied by final-delta --target; keep using it")
	}
	replica, err := setupTarget(ctx, target, opts.LockTimeout)
	if err != nil {
		return res, err
	}
	if !replica {
		opts.Logger.Info("target role cannot set session_replication_role = replica: disabling the tables' user triggers and foreign keys around each batch instead")
	}
	plan, err := planImport(ctx, target, st) // rounds_source.go: the rounds given, in order, without a gap
	if err != nil {
		return res, err
	}
	// The newest export knows every take-over: a round written before one
	// may hold the changes it supersedes.
	takeover := map[int32]int64{}
	for _, m := range plan.rounds {
		for tid, id := range m.Takeover {
			takeover[tid] = max(takeover[tid], id)
		}
	}
	for _, m := range plan.rounds {
		rr, err := importRound(ctx, target, st, m, base, replica, takeover, opts)
		if err != nil {
			return res, err
		}
		res.add(rr)
	}
	if _, err := refreshMatviews(ctx, target, opts); err != nil { // matviews.go
		return res, err
	}
	if _, err := validatePending(ctx, target); err != nil {
		return res, err
	}
	last := plan.seqs
	if !opts.SkipSequences && last != nil {
		n, err := setSequences(ctx, target, last.Sequences)
		if err != nil {
			return res, err
		}
		res.Sequences = n
	}
	return res, nil
}

// importRound applies the parts of one round not yet recorded in
// kwickmig.batches.
func importRound(ctx context.Context, target *pgx.Conn, st BatchStore, m manifest, base snapshot, replica bool, takeover map[int32]int64, opts Options) (RoundResult, error) {
	rr := RoundResult{Round: m.Round, Tick: m.Tick, Prev: m.PrevTick, Replica: replica, Files: len(m.Parts)}
	var snap string
	var done bool
	err := target.QueryRow(ctx, `SELECT snapshot, done FROM kwickmig.rounds WHERE round = $1`, m.Round).Scan(&snap, &done)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return rr, fmt.Errorf("target: read round %d: %w", m.Round, err)
	case snap != m.Tick:
		return rr, fmt.Errorf("target: round %d was applied from another export (tick %s, this file says %s)", m.Round, snap, m.Tick)
	case done:
		rr.Skipped = true
		return rr, nil
	}
	if err := prepareImportTarget(ctx, target, m); err != nil {
		return rr, err
	}
	applied := map[int]bool{}
	rows, err := target.Query(ctx, `SELECT part FROM kwickmig.batches WHERE round = $1`, m.Round)
	if err != nil {
		return rr, fmt.Errorf("target: read applied batches: %w", err)
	}
	parts, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return rr, fmt.Errorf("target: read applied batches: %w", err)
	}
	for _, p := range parts {
		applied[p] = true
	}
	infos, err := manifestTables(ctx, target, m)
	if err != nil {
		return rr, err
	}
	a := &applier{tables: infos, lw: newLockWatch(target, opts.LockTimeout), restricted: !replica, takeover: takeover}
	defer a.lw.close()
	start := time.Now()
	tr := targetRound{Round: m.Round, Mode: modeOffline, Snapshot: m.Tick, Prev: m.PrevTick}
	// A round without parts still gets its row, so the chain is recorded.
	todo := append([]manifestPart(nil), m.Parts...)
	if len(todo) == 0 {
		todo = append(todo, manifestPart{})
	}
	for i, p := range todo {
		if p.File != "" && applied[p.Part] {
			continue
		}
		var changes []logRow
		if p.File != "" {
			data, err := st.Get(ctx, p.File)
			if err != nil {
				return rr, fmt.Errorf("%s: read %s: %w", st, p.File, err)
			}
			all, err := decodePart(p, data)
			if err != nil {
				return rr, fmt.Errorf("%s: %w", st, err)
			}
			for _, c := range all {
				if !base.visible(c.Txid) {
					changes = append(changes, c)
				}
			}
		}
		last := i == len(todo)-1
		err := a.lw.run(ctx, func() error {
			return pgx.BeginFunc(ctx, target, func(tx pgx.Tx) error {
				if !replica {
					if _, err := tx.Exec(ctx, "SET CONSTRAINTS ALL DEFERRED"); err != nil {
						return fmt.Errorf("target: %w", err)
					}
				}
				if err := a.apply(ctx, tx, changes); err != nil {
					return err
				}
				if testHookBatch != nil {
					if err := testHookBatch(ctx, tx); err != nil {
						return err
					}
				}
				if p.File != "" {
					if _, err := tx.Exec(ctx, `INSERT INTO kwickmig.batches (round, part, file, sha256, rows) VALUES ($1, $2, $3, $4, $5)`,
						m.Round, p.Part, p.File, p.SHA256, int64(len(changes))); err != nil {
						return fmt.Errorf("target: record batch %s: %w", p.File, err)
					}
				}
				return recordProgress(ctx, tx, tr, 0, int64(len(changes)), last)
			})
		})
		if err != nil {
			return rr, fmt.Errorf("round %d: %w", m.Round, err)
		}
		rr.Rows += int64(len(changes))
		rr.Bytes += p.Bytes
		if opts.OnBatch != nil {
			opts.OnBatch(len(changes))
		}
	}
	rr.Seconds = time.Since(start).Seconds()
	opts.Logger.Info("round imported", "round", m.Round, "rows", rr.Rows, "seconds", fmt.Sprintf("%.2f", rr.Seconds))
	return rr, nil
}

// manifestTables checks the target's tables against the columns the
// manifest recorded on the source and builds their statements.
func manifestTables(ctx context.Context, target *pgx.Conn, m manifest) (map[int32]*tableInfo, error) {
	infos := map[int32]*tableInfo{}
	var problems []string
	for _, t := range m.Tables {
		c := captured{TID: t.TID, Cols: t.Logged, table: table{Schema: t.Schema, Name: t.Name, Key: t.Key}}
		cols, err := tableColumns(ctx, target, t.Schema, t.Name)
		if err != nil {
			return nil, fmt.Errorf("target: read columns of %s: %w", c.display(), err)
		}
		src := make([]column, len(t.Columns))
		for i, n := range t.Columns {
			src[i] = column{Name: n}
		}
		ti, problem, err := checkTargetTable(ctx, target, c, src, cols, "import")
		if err != nil {
			return nil, err
		}
		if problem != "" {
			problems = append(problems, problem)
			continue
		}
		infos[t.TID] = ti
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, fmt.Errorf("target: %w: %s; nothing of round %d was applied", ErrSchemaChanged, strings.Join(problems, ", "), m.Round)
	}
	return infos, nil
}
