package pgdelta

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Backlog is the part of the capture status that changes while the
// application writes: what the next delta round would carry.
type Backlog struct {
	Rows, Bytes  int64
	Oldest       time.Time // zero when there is no backlog
	LastRound    int
	LastTick     string // "" before the first round
	SinceInstall bool   // no round yet: also counts changes the bulk copy holds
}

// CaptureBacklog measures the backlog alone (two cheap queries, none of
// capture status's schema checks), for --metrics-addr's gauges. ok is false
// when capture is not installed on the source.
func CaptureBacklog(ctx context.Context, source *pgx.Conn) (b Backlog, ok bool, err error) {
	if ok, err = CaptureInstalled(ctx, source); err != nil || !ok {
		return b, ok, err
	}
	b, err = backlog(ctx, source)
	return b, err == nil, err
}

// backlog counts the log rows not yet applied (direct) or exported
// (offline) by a finished round, their size and the oldest's time.
func backlog(ctx context.Context, source *pgx.Conn) (Backlog, error) {
	var b Backlog
	last, round, err := lastDoneTick(ctx, source)
	if err != nil {
		return b, err
	}
	b.LastRound = round
	if last == "" {
		b.SinceInstall = true
		last = emptySnapshot
	} else {
		b.LastTick = last
	}
	var oldest *time.Time
	err = source.QueryRow(ctx, `SELECT count(*), coalesce(sum(pg_column_size(l.*)), 0), min(l.logged_at)
		FROM kwickmig.log l
		WHERE l.txid >= pg_snapshot_xmin($1::pg_snapshot) AND NOT pg_visible_in_snapshot(l.txid, $1::pg_snapshot)`,
		last).Scan(&b.Rows, &b.Bytes, &oldest)
	if err != nil {
		return b, fmt.Errorf("source: capture status: %w", err)
	}
	if oldest != nil {
		b.Oldest = *oldest
	}
	return b, nil
}
