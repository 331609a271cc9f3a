package pgcopy

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/pgutil"
)

// sessionSQL makes text-format COPY exact and identical on both sides
// (binary format does not depend on these). The empty search_path, as in
// pg_restore, makes format_type() qualify user types alike on both sides.
// As pg_dump does, it lifts the role's timeouts: the coordinator stays idle
// in its transaction for the whole copy and one COPY may run for hours.
const sessionSQL = `SET statement_timeout = 0; SET lock_timeout = 0; SET idle_in_transaction_session_timeout = 0; ` +
	`SET DateStyle = ISO, YMD; SET IntervalStyle = postgres; SET TimeZone = 'UTC'; ` +
	`SET extra_float_digits = 3; SET bytea_output = hex; SET client_min_messages = warning; ` +
	`SELECT pg_catalog.set_config('search_path', '', false)`

// connect opens a connection with kwickmig's session settings.
func connect(ctx context.Context, side pgutil.Side, url string) (*pgx.Conn, error) {
	conn, err := pgutil.Connect(ctx, side, url)
	if err != nil {
		return nil, err
	}
	if err := conn.PgConn().Exec(ctx, sessionSQL).Close(); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("%s: session settings: %s", side, oneLine(err))
	}
	return conn, nil
}

// coordinator holds the source transaction whose snapshot every worker
// imports. It stays open until the copy is over.
type coordinator struct {
	conn       *pgx.Conn
	snapshotID string // pg_export_snapshot()
	snapshot   string // pg_current_snapshot()::text: tick 0 for change capture
	sysID      string
	dbName     string
	major      int
	blockSize  int64
}

// openCoordinator connects to the source, reads its identity, then begins
// the REPEATABLE READ transaction and exports its snapshot. beforeSnapshot
// runs on the connection just before the transaction starts.
func openCoordinator(ctx context.Context, url string, beforeSnapshot func(*pgx.Conn) error) (*coordinator, error) {
	conn, err := connect(ctx, pgutil.Source, url)
	if err != nil {
		return nil, err
	}
	c := &coordinator{conn: conn}
	fail := func(what string, err error) (*coordinator, error) {
		conn.Close(context.Background())
		return nil, fmt.Errorf("source: %s: %s", what, oneLine(err))
	}
	var version string
	err = conn.QueryRow(ctx, `SELECT current_database(), current_setting('server_version_num'),
		current_setting('block_size')::bigint`).Scan(&c.dbName, &version, &c.blockSize)
	if err != nil {
		return fail("read server settings", err)
	}
	n, _ := strconv.Atoi(version)
	c.major = n / 10000
	c.sysID = systemIdentifier(ctx, conn)
	if beforeSnapshot != nil {
		if err := beforeSnapshot(conn); err != nil {
			conn.Close(context.Background())
			return nil, err
		}
	}
	if _, err := conn.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return fail("begin snapshot transaction", err)
	}
	err = conn.QueryRow(ctx, "SELECT pg_export_snapshot(), pg_current_snapshot()::text").Scan(&c.snapshotID, &c.snapshot)
	if err != nil {
		return fail("export snapshot", err)
	}
	return c, nil
}

// systemIdentifier names the source cluster in the checkpoint identity.
// pg_control_system() may be restricted; the server address stands in.
func systemIdentifier(ctx context.Context, conn *pgx.Conn) string {
	var id string
	if err := conn.QueryRow(ctx, "SELECT system_identifier::text FROM pg_control_system()").Scan(&id); err == nil {
		return id
	}
	cfg := conn.Config()
	return fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
}

func (c *coordinator) close() {
	if c != nil && c.conn != nil {
		c.conn.Close(context.Background())
	}
}

// openSnapshotWorker connects to the source and enters the coordinator's
// snapshot.
func openSnapshotWorker(ctx context.Context, url, snapshotID string) (*pgx.Conn, error) {
	conn, err := connect(ctx, pgutil.Source, url)
	if err != nil {
		return nil, err
	}
	// row_security = off: a table with row-level security the role does not
	// bypass fails loudly instead of copying a filtered subset (pg_dump).
	sql := "SET row_security = off; BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT " + quoteLiteral(snapshotID)
	if err := conn.PgConn().Exec(ctx, sql).Close(); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("source: import snapshot %s: %s", snapshotID, oneLine(err))
	}
	return conn, nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// targetIdentity names the target without secrets.
func targetIdentity(conn *pgx.Conn) string {
	cfg := conn.Config()
	return fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
}

// dbIdentity is what the checkpoint's "db" section is bound to: the same
// for db copy and for db import of an export of the same database.
func dbIdentity(sourceSysID, sourceDB, target string) string {
	return fmt.Sprintf("source %s/%s -> target %s", sourceSysID, sourceDB, target)
}
