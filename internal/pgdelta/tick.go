package pgdelta

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Tick modes: a source is drained either straight into a target (direct) or
// into batch files (offline), never both, because each keeps its own chain
// of ticks.
const (
	modeDirect  = "direct"
	modeOffline = "offline"
)

// testHookBeforeTick, when set by a test, runs just before a tick is taken
// (schema changes racing the tick).
var testHookBeforeTick func(ctx context.Context)

// takeTick stores pg_current_snapshot() in kwickmig.tick in its own
// transaction and returns it. Every transaction visible in it has committed
// before the tick committed, so a later read of the log sees all their rows.
// The same REPEATABLE READ transaction checks the source schema first: the
// catalog it reads and the tick are one snapshot, so no DDL can commit
// between the check and the tick and slip into the round unnoticed.
func takeTick(ctx context.Context, source *pgx.Conn, mode string) (id int64, snap string, err error) {
	if testHookBeforeTick != nil {
		testHookBeforeTick(ctx)
	}
	err = pgx.BeginTxFunc(ctx, source, pgx.TxOptions{IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		if _, err := checkSourceSchema(ctx, source); err != nil {
			return err
		}
		// In REPEATABLE READ pg_current_snapshot() is the transaction's
		// snapshot, the one the schema check read.
		if err := tx.QueryRow(ctx, `INSERT INTO kwickmig.tick (snapshot, mode) VALUES (pg_current_snapshot(), $1)
			RETURNING id, snapshot::text`, mode).Scan(&id, &snap); err != nil {
			return fmt.Errorf("source: take tick: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, "", err
	}
	return id, snap, nil
}

// markTick records on the source that a tick's round was applied or
// exported. For direct mode it is a hint for capture status (the target is
// the authority); for offline mode it is the chain the next export continues.
func markTick(ctx context.Context, source *pgx.Conn, id int64, round int, state string) error {
	_, err := source.Exec(ctx, `UPDATE kwickmig.tick SET state = $2, round = $3 WHERE id = $1`, id, state, round)
	if err != nil {
		return fmt.Errorf("source: record tick %d as %s: %w", id, state, err)
	}
	return nil
}

// lastDoneTick returns the snapshot and round of the newest applied or
// exported tick, or "" if there is none.
func lastDoneTick(ctx context.Context, source *pgx.Conn) (string, int, error) {
	var snap string
	var round int
	err := source.QueryRow(ctx, `SELECT snapshot::text, coalesce(round, 0) FROM kwickmig.tick
		WHERE state IN ('applied', 'exported') ORDER BY id DESC LIMIT 1`).Scan(&snap, &round)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("source: read last tick: %w", err)
	}
	return snap, round, nil
}

// checkTickMode refuses to mix direct and offline draining of one source.
func checkTickMode(ctx context.Context, source *pgx.Conn, mode string) error {
	var other bool
	err := source.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM kwickmig.tick WHERE mode <> $1 AND state <> 'taken')`,
		mode).Scan(&other)
	if err != nil {
		return fmt.Errorf("source: read ticks: %w", err)
	}
	if other {
		want := map[string]string{modeDirect: "--out", modeOffline: "--target"}[mode]
		return fmt.Errorf("source: earlier delta rounds of this capture ran with %s; keep using it (one capture drains to one place)", want)
	}
	return nil
}

// installTxid returns the transaction id that installed capture. A bulk copy
// whose snapshot does not see it started before the triggers existed and
// may miss changes.
func installTxid(ctx context.Context, source *pgx.Conn) (uint64, error) {
	var s string
	err := source.QueryRow(ctx, `SELECT value FROM kwickmig.meta WHERE key = 'install_txid'`).Scan(&s)
	if err != nil {
		return 0, fmt.Errorf("source: read capture install: %w", err)
	}
	return strconv.ParseUint(s, 10, 64)
}

// checkBaseline refuses a baseline snapshot taken before capture was
// installed: changes committed between the snapshot and the install would be
// in neither the copy nor the log.
func checkBaseline(ctx context.Context, source *pgx.Conn, baseline string) error {
	x, err := installTxid(ctx, source)
	if err != nil {
		return err
	}
	sn, err := parseSnapshot(baseline)
	if err != nil {
		return fmt.Errorf("target: baseline: %w", err)
	}
	if !sn.visible(x) {
		return fmt.Errorf("the bulk copy's snapshot (%s) was taken before capture install committed (txid %d): changes in between may be missing; run capture install first, then the bulk copy again", baseline, x)
	}
	return nil
}

// excludedPatterns returns the tables excluded at install: schema.table as
// pgcatalog.Display writes it (installs by older versions: the
// --exclude-table names as typed).
func excludedPatterns(ctx context.Context, source *pgx.Conn) ([]string, error) {
	var s string
	err := source.QueryRow(ctx, `SELECT coalesce((SELECT value FROM kwickmig.meta WHERE key = 'excluded'), '')`).Scan(&s)
	if err != nil {
		return nil, fmt.Errorf("source: read capture install: %w", err)
	}
	if s == "" {
		return nil, nil
	}
	return strings.Split(s, "\n"), nil
}
