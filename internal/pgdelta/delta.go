package pgdelta

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options tune a delta round.
type Options struct {
	// BatchRows bounds the log rows applied per target transaction (and held
	// in memory). Zero means 5000.
	BatchRows int
	// SkipSequences leaves the target's sequences alone.
	SkipSequences bool
	// LockTimeout bounds each wait for a lock on the target (lock_timeout);
	// when it fires, the error names the session holding the lock. Zero
	// means 30 s.
	LockTimeout time.Duration
	// NoRefreshMatviews leaves the target's materialized views as they are
	// (matviews.go).
	NoRefreshMatviews bool
	Logger            *slog.Logger
	// OnBatch, if set, is told the changes of each batch once it is
	// committed on the target (final-delta, import-delta) or written as a
	// batch file (final-delta --out), for --metrics-addr.
	OnBatch func(rows int)
}

func (o *Options) fill() {
	if o.BatchRows <= 0 {
		o.BatchRows = 5000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = 30 * time.Second
	}
}

// RoundResult describes one applied (or exported) round.
type RoundResult struct {
	Round    int      `json:"round"`
	Tick     string   `json:"tick"`
	Prev     string   `json:"prev_tick"`
	Rows     int64    `json:"rows"`
	Resumed  bool     `json:"resumed,omitempty"`
	Seconds  float64  `json:"seconds"`
	Replica  bool     `json:"replica_mode,omitempty"`
	Files    int      `json:"files,omitempty"`
	Bytes    int64    `json:"bytes,omitempty"`
	Skipped  bool     `json:"skipped,omitempty"` // already applied (import-delta)
	Warnings []string `json:"warnings,omitempty"`
}

// Result is a final-delta or import-delta run.
type Result struct {
	Rounds    []RoundResult `json:"rounds"`
	Rows      int64         `json:"rows"`
	Sequences int           `json:"sequences"`
	Warnings  []string      `json:"warnings,omitempty"`
}

// ErrNoCapture is matched when capture was never installed on the source.
var ErrNoCapture = errors.New("change capture is not installed on the source")

// ErrNoBaseline is matched when the target has no bulk-copy snapshot.
var ErrNoBaseline = errors.New("the target has no baseline snapshot")

// lockKey is the advisory lock one delta run holds on each side.
const lockKey = 0x6b776d6764656c74 // "kwmgdelt"

func advisoryLock(ctx context.Context, conn *pgx.Conn, side string) error {
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, int64(lockKey)).Scan(&ok); err != nil {
		return fmt.Errorf("%s: advisory lock: %w", side, err)
	}
	if !ok {
		holder := ""
		// A bigint advisory key is (classid, objid) = (high, low) 32 bits.
		rows, err := conn.Query(ctx, strings.Replace(blockersSQL, "a.pid = ANY (pg_blocking_pids($1))",
			"a.pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND classid = $1 AND objid = $2)", 1),
			uint32(uint64(lockKey)>>32), uint32(uint64(lockKey)&0xffffffff))
		if err == nil {
			if bs, err := collectBlockers(rows); err == nil && len(bs) > 0 {
				holder = ": " + bs[0].String() + fmt.Sprintf("; if that run is gone, end its session with SELECT pg_terminate_backend(%d)", bs[0].PID)
			}
		}
		return fmt.Errorf("%s: another kwickmig delta run holds this database's delta lock; wait for it to finish%s", side, holder)
	}
	return nil
}

// prepare runs the checks every delta run shares, before anything moves:
// capture installed, source schema unchanged, target tables matching.
func prepare(ctx context.Context, source, target *pgx.Conn) (map[int32]*tableInfo, error) {
	ok, err := CaptureInstalled(ctx, source)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("source: %w (run kwickmig db capture install before the bulk copy)", ErrNoCapture)
	}
	caps, err := checkSourceSchema(ctx, source)
	if err != nil {
		return nil, err
	}
	if target == nil {
		return nil, nil
	}
	return prepareTargetTables(ctx, source, target, caps)
}

// targetRound is a row of the target's kwickmig.rounds.
type targetRound struct {
	Round     int
	Mode      string
	Snapshot  string
	Prev      string
	LastLogID int64
	Done      bool
}

// lastRound returns the target's newest round (round 0 is the baseline).
func lastRound(ctx context.Context, target *pgx.Conn) (targetRound, error) {
	var r targetRound
	var prev *string
	err := target.QueryRow(ctx, `SELECT round, mode, snapshot, prev_snapshot, last_log_id, done
		FROM kwickmig.rounds ORDER BY round DESC LIMIT 1`).Scan(&r.Round, &r.Mode, &r.Snapshot, &prev, &r.LastLogID, &r.Done)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("target: %w (run kwickmig db copy or db import with capture installed on the source first)", ErrNoBaseline)
	}
	if err != nil {
		return r, fmt.Errorf("target: read delta rounds: %w", err)
	}
	if prev != nil {
		r.Prev = *prev
	}
	return r, nil
}

// FinalDelta applies the source's captured changes to the target: first the
// rest of a round an earlier run left unfinished, then one new round (tick
// k: every change visible in it and not in tick k-1), then every sequence
// set to the source's value. It may run any number of times; each round
// applies only what is new, each change exactly once.
func FinalDelta(ctx context.Context, source, target *pgx.Conn, opts Options) (Result, error) {
	opts.fill()
	var res Result
	infos, err := prepare(ctx, source, target)
	if err != nil {
		return res, err
	}
	if err := ensureTarget(ctx, target); err != nil {
		return res, err
	}
	if err := advisoryLock(ctx, target, "target"); err != nil {
		return res, err
	}
	defer target.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(lockKey)) //nolint:errcheck
	if err := checkTickMode(ctx, source, modeDirect); err != nil {
		return res, err
	}
	takeover, err := followPartitionsWatermarked(ctx, source, target) // partitions.go, takeover.go
	if err != nil {
		return res, err
	}
	last, err := lastRound(ctx, target)
	if err != nil {
		return res, err
	}
	if last.Mode == modeOffline {
		return res, fmt.Errorf("target: earlier rounds were applied by import-delta; keep using final-delta --out and import-delta")
	}
	if last.Done && last.Round > 0 {
		// The source's record of the last applied tick (for capture status)
		// may lag if a run died right after its last commit.
		if _, err := source.Exec(ctx, `UPDATE kwickmig.tick SET state = 'applied', round = $2
			WHERE mode = 'direct' AND state = 'taken' AND snapshot::text = $1`, last.Snapshot, last.Round); err != nil {
			return res, fmt.Errorf("source: record applied tick: %w", err)
		}
	}
	base, err := baseline(ctx, target)
	if err != nil {
		return res, err
	}
	if err := checkBaseline(ctx, source, base); err != nil {
		return res, err
	}
	replica, err := setupTarget(ctx, target, opts.LockTimeout)
	if err != nil {
		return res, err
	}
	if !replica {
		opts.Logger.Info("target role cannot set session_replication_role = replica: disabling the tables' user triggers and foreign keys around each batch instead")
	}
	a := &applier{tables: infos, lw: newLockWatch(target, opts.LockTimeout), restricted: !replica, takeover: takeover}
	defer a.lw.close()
	if !last.Done {
		opts.Logger.Info("resuming unfinished round", "round", last.Round, "after_log_id", last.LastLogID)
		rr, err := runRound(ctx, source, target, a, last, 0, replica, opts)
		if err != nil {
			return res, err
		}
		rr.Resumed = true
		res.add(rr)
		last.Snapshot, last.Round = rr.Tick, rr.Round
	}
	tickID, snap, err := takeTick(ctx, source, modeDirect)
	if err != nil {
		return res, err
	}
	next := targetRound{Round: last.Round + 1, Mode: modeDirect, Snapshot: snap, Prev: last.Snapshot}
	rr, err := runRound(ctx, source, target, a, next, tickID, replica, opts)
	if err != nil {
		return res, err
	}
	res.add(rr)
	if n, err := validatePending(ctx, target); err != nil {
		return res, err
	} else if n > 0 {
		opts.Logger.Info("foreign keys validated", "count", n)
	}
	if _, err := refreshMatviews(ctx, target, opts); err != nil { // matviews.go
		return res, err
	}
	if !opts.SkipSequences {
		n, err := syncSequences(ctx, source, target)
		if err != nil {
			return res, err
		}
		res.Sequences = n
	}
	return res, nil
}

func (r *Result) add(rr RoundResult) {
	r.Rounds = append(r.Rounds, rr)
	r.Rows += rr.Rows
	r.Warnings = append(r.Warnings, rr.Warnings...)
}

// baseline returns round 0's snapshot.
func baseline(ctx context.Context, target *pgx.Conn) (string, error) {
	var s string
	err := target.QueryRow(ctx, `SELECT snapshot FROM kwickmig.rounds WHERE round = 0`).Scan(&s)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("target: %w (run kwickmig db copy or db import with capture installed on the source first)", ErrNoBaseline)
	}
	if err != nil {
		return "", fmt.Errorf("target: read baseline: %w", err)
	}
	return s, nil
}

// testHookBatch, when set by a test, runs inside each apply transaction
// after the changes and before the progress record (crash simulation).
var testHookBatch func(ctx context.Context, tx pgx.Tx) error

// roundSQL selects a round's changes: committed in tick k ($2) and not in
// tick k-1 ($1), found through the txid index in [xmin(k-1), xmax(k)), in
// log-id order, after the round's progress ($3).
const roundSQL = `SELECT id, txid::text::bigint, tid, op::text, key, old_key, data
FROM kwickmig.log
WHERE txid >= pg_snapshot_xmin($1::pg_snapshot) AND txid < pg_snapshot_xmax($2::pg_snapshot)
  AND pg_visible_in_snapshot(txid, $2::pg_snapshot) AND NOT pg_visible_in_snapshot(txid, $1::pg_snapshot)
  AND id > $3
ORDER BY id`

// scanRound streams a round's log rows to fn in slices of at most n; the
// last call has fewer than n rows (possibly none). fn may keep the slice.
func scanRound(ctx context.Context, source *pgx.Conn, prev, tick string, after int64, n int, fn func([]logRow) error) error {
	rows, err := source.Query(ctx, roundSQL, prev, tick, after)
	if err != nil {
		return fmt.Errorf("source: read change log: %w", err)
	}
	defer rows.Close()
	buf := make([]logRow, 0, n)
	for rows.Next() {
		var r logRow
		var txid int64
		if err := rows.Scan(&r.ID, &txid, &r.TID, &r.Op, &r.Key, &r.OldKey, &r.Data); err != nil {
			return fmt.Errorf("source: read change log: %w", err)
		}
		r.Txid = uint64(txid)
		buf = append(buf, r)
		if len(buf) == n {
			if err := fn(buf); err != nil {
				return err
			}
			buf = make([]logRow, 0, n)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("source: read change log: %w", err)
	}
	rows.Close()
	return fn(buf)
}

// runRound applies round r (resuming after r.LastLogID) in target
// transactions of at most opts.BatchRows changes. Each transaction commits
// the changes with the round's progress; the last marks it done. tickID,
// when non-zero, is the source tick to mark applied afterwards.
func runRound(ctx context.Context, source, target *pgx.Conn, a *applier, r targetRound, tickID int64, replica bool, opts Options) (RoundResult, error) {
	start := time.Now()
	rr := RoundResult{Round: r.Round, Tick: r.Snapshot, Prev: r.Prev, Replica: replica}
	var applyTime time.Duration
	err := pipelined(ctx, func(ctx context.Context, fn func([]logRow) error) error {
		return scanRound(ctx, source, r.Prev, r.Snapshot, r.LastLogID, opts.BatchRows, fn)
	}, func(rows []logRow) error {
		t0 := time.Now()
		defer func() { applyTime += time.Since(t0) }()
		err := a.lw.run(ctx, func() error {
			return pgx.BeginFunc(ctx, target, func(tx pgx.Tx) error {
				if !replica {
					if _, err := tx.Exec(ctx, "SET CONSTRAINTS ALL DEFERRED"); err != nil {
						return fmt.Errorf("target: %w", err)
					}
				}
				if err := a.apply(ctx, tx, rows); err != nil {
					return err
				}
				if testHookBatch != nil {
					if err := testHookBatch(ctx, tx); err != nil {
						return err
					}
				}
				lastID := r.LastLogID
				if len(rows) > 0 {
					lastID = rows[len(rows)-1].ID
				}
				done := len(rows) < opts.BatchRows
				return recordProgress(ctx, tx, r, lastID, int64(len(rows)), done)
			})
		})
		if err != nil {
			return fmt.Errorf("round %d: %w", r.Round, err)
		}
		rr.Rows += int64(len(rows))
		if opts.OnBatch != nil {
			opts.OnBatch(len(rows))
		}
		if len(rows) > 0 {
			r.LastLogID = rows[len(rows)-1].ID
		}
		opts.Logger.Debug("applied batch", "round", r.Round, "rows", len(rows), "through_log_id", r.LastLogID)
		return nil
	})
	if err != nil {
		return rr, err
	}
	rr.Seconds = time.Since(start).Seconds()
	if tickID != 0 {
		if err := markTick(ctx, source, tickID, r.Round, "applied"); err != nil {
			rr.Warnings = append(rr.Warnings, err.Error())
		}
	}
	opts.Logger.Info("round applied", "round", r.Round, "rows", rr.Rows, "seconds", fmt.Sprintf("%.2f", rr.Seconds),
		"target_seconds", fmt.Sprintf("%.2f", applyTime.Seconds()))
	return rr, nil
}

// pipelined runs produce in a goroutine and consume in this one, with one
// batch in flight between them: the source reads batch k+1 while the target
// applies batch k. The first error stops both.
func pipelined(ctx context.Context, produce func(context.Context, func([]logRow) error) error, consume func([]logRow) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan []logRow, 1)
	var perr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		perr = produce(ctx, func(rows []logRow) error {
			select {
			case ch <- rows:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	var cerr error
	for rows := range ch {
		if cerr == nil {
			if cerr = consume(rows); cerr != nil {
				cancel()
			}
		}
	}
	<-done
	if cerr != nil {
		return cerr
	}
	return perr
}

// recordProgress upserts the round's row in the same transaction as its
// changes.
func recordProgress(ctx context.Context, tx pgx.Tx, r targetRound, lastID, n int64, done bool) error {
	tag, err := tx.Exec(ctx, `INSERT INTO kwickmig.rounds (round, mode, snapshot, prev_snapshot, last_log_id, done, rows_applied, finished_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $6 THEN now() END)
		ON CONFLICT (round) DO UPDATE SET last_log_id = EXCLUDED.last_log_id, done = EXCLUDED.done,
			rows_applied = kwickmig.rounds.rows_applied + EXCLUDED.rows_applied, finished_at = EXCLUDED.finished_at
		WHERE kwickmig.rounds.snapshot = EXCLUDED.snapshot AND NOT kwickmig.rounds.done`,
		r.Round, r.Mode, r.Snapshot, r.Prev, lastID, done, n)
	if err != nil {
		return fmt.Errorf("target: record round %d: %w", r.Round, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("target: round %d was changed by another run meanwhile; nothing of this batch was applied", r.Round)
	}
	return nil
}
