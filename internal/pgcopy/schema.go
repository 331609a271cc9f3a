package pgcopy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"

	"github.com/kwick/kwickmig/internal/pgutil"
)

// runPreamble runs pg_dump's SET statements one by one; settings the target
// does not know (a newer pg_dump's) are skipped, as psql would.
func runPreamble(ctx context.Context, conn *pgx.Conn, preamble []string) error {
	for _, stmt := range preamble {
		err := conn.PgConn().Exec(ctx, stmt).Close()
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42704" { // undefined_object: unknown setting
			continue
		}
		if err != nil {
			return fmt.Errorf("target: %s: %s", stmt, oneLine(err))
		}
	}
	return nil
}

// applyPreData creates types, tables, sequences and functions on the
// target in one transaction: it either all exists afterwards or none of it.
func applyPreData(ctx context.Context, conn *pgx.Conn, s *script) error {
	if err := runPreamble(ctx, conn, s.Preamble); err != nil {
		return err
	}
	var all strings.Builder
	for _, e := range s.Entries {
		all.WriteString(e.SQL)
		all.WriteString("\n")
	}
	if all.Len() == 0 {
		return nil
	}
	if err := conn.PgConn().Exec(ctx, all.String()).Close(); err != nil {
		return fmt.Errorf("target: create schema (pre-data): %s", oneLine(err))
	}
	return nil
}

// entryKey identifies a post-data item in the checkpoint.
func entryKey(e entry) string {
	h := sha256.Sum256([]byte(e.SQL))
	return "post/" + hex.EncodeToString(h[:12])
}

// postDataRunner builds indexes, constraints and triggers after the data.
type postDataRunner struct {
	targetURL string
	jobs      int
	log       *slog.Logger
	done      func(key string) bool
	markDone  func(key string) error
	// resume: an item that already exists was built by the interrupted run
	// after its last checkpoint write; it counts as done.
	resume bool
	// workers: parallel workers per index build or key check
	// (max_parallel_maintenance_workers, max_parallel_workers_per_gather);
	// -1 leaves the server's settings.
	workers int
	// workMem: maintenance_work_mem, "server" to leave it.
	workMem string
	// afterIndexes runs once, when every index and key is built and before
	// triggers and foreign keys (resume.go: the catch-up of tables an
	// earlier run finished).
	afterIndexes func(context.Context) error
}

// apply runs the post-data script: indexes and primary/unique constraints
// in parallel, then the other items in dump order, then foreign keys (they
// need the unique indexes; fk.go). Items already done (resume) and
// change-capture triggers are skipped. It returns the number of items run.
func (r *postDataRunner) apply(ctx context.Context, s *script) (int, error) {
	var par, serial, fks []entry
	for _, e := range s.Entries {
		if isCaptureObject(e) || r.done(entryKey(e)) {
			continue
		}
		switch e.Type {
		case "INDEX", "CONSTRAINT":
			par = append(par, e)
		case "FK CONSTRAINT":
			fks = append(fks, e)
		default:
			serial = append(serial, e)
		}
	}
	if err := r.run(ctx, s.Preamble, par, r.jobs); err != nil {
		return 0, err
	}
	n := len(par)
	if hook := r.afterIndexes; hook != nil {
		r.afterIndexes = nil
		if err := hook(ctx); err != nil {
			return n, err
		}
	}
	if err := r.run(ctx, s.Preamble, serial, 1); err != nil {
		return n, err
	}
	n += len(serial)
	if err := r.applyFKs(ctx, s.Preamble, fks); err != nil {
		return n, err
	}
	return n + len(fks), nil
}

func (r *postDataRunner) run(ctx context.Context, preamble []string, items []entry, jobs int) error {
	if len(items) == 0 {
		return nil
	}
	g, ctx := errgroup.WithContext(ctx)
	ch := make(chan entry, len(items))
	for _, e := range items {
		ch <- e
	}
	close(ch)
	for range min(jobs, len(items)) {
		g.Go(func() error { return r.worker(ctx, preamble, ch) })
	}
	return g.Wait()
}

// worker builds the items it receives on one target connection.
func (r *postDataRunner) worker(ctx context.Context, preamble []string, ch <-chan entry) error {
	conn, err := r.session(ctx, preamble)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for e := range ch {
		if err := r.exec(ctx, conn, e, e.SQL); err != nil {
			return err
		}
	}
	return nil
}

// session opens a target connection for post-data work: pg_dump's
// preamble, maintenance_work_mem for index builds and foreign key checks
// (which use it as their work_mem), and parallel workers per statement as
// configured. Every job is a backend of its own already: on a target with
// few cores, the server's default two extra workers per index build and
// per key check crowd out the other jobs (measured on 2 cores: 30% more
// target CPU, 10% more wall time).
func (r *postDataRunner) session(ctx context.Context, preamble []string) (*pgx.Conn, error) {
	conn, err := connect(ctx, pgutil.Target, r.targetURL)
	if err != nil {
		return nil, err
	}
	if err := runPreamble(ctx, conn, preamble); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	var set []string
	if r.workMem != "" && r.workMem != "server" {
		set = append(set, "SET maintenance_work_mem = "+quoteLiteral(r.workMem))
	}
	if r.workers >= 0 {
		set = append(set, fmt.Sprintf("SET max_parallel_maintenance_workers = %d", r.workers),
			fmt.Sprintf("SET max_parallel_workers_per_gather = %d", r.workers))
	}
	for _, stmt := range set {
		if err := conn.PgConn().Exec(ctx, stmt).Close(); err != nil {
			conn.Close(context.Background())
			return nil, fmt.Errorf("target: %s: %s", stmt, oneLine(err))
		}
	}
	return conn, nil
}

// exec runs sql, the statement (or a step of it) of post-data item e, and
// records e as done.
func (r *postDataRunner) exec(ctx context.Context, conn *pgx.Conn, e entry, sql string) error {
	start := time.Now()
	err := conn.PgConn().Exec(ctx, sql).Close()
	var pe *pgconn.PgError
	if r.resume && errors.As(err, &pe) && (pe.Code == "42P07" || pe.Code == "42710" || pe.Code == "42P16") {
		r.log.Info("post-data item exists already (resume)", "type", e.Type, "name", e.Name)
		err = nil
	}
	if err != nil {
		return fmt.Errorf("target: create %s %s: %s", strings.ToLower(e.Type), e.Name, oneLine(err))
	}
	// Slow items (big indexes, foreign key checks) are what an operator
	// watches at this stage; the rest only at debug level.
	lvl := slog.LevelDebug
	if time.Since(start) >= time.Second {
		lvl = slog.LevelInfo
	}
	r.log.Log(ctx, lvl, "post-data item built", "type", e.Type, "name", e.Name, "seconds", fmt.Sprintf("%.1f", time.Since(start).Seconds()))
	return r.markDone(entryKey(e))
}

// matviewsSQL lists the populated materialized views in dependency order:
// a view's depth is its longest chain of materialized (or plain) views
// below it, read from pg_rewrite and pg_depend, so each comes after the
// views it reads.
const matviewsSQL = `
WITH RECURSIVE dep(viewid, base) AS (
  SELECT DISTINCT r.ev_class, d.refobjid
  FROM pg_catalog.pg_rewrite r
  JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
   AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid <> r.ev_class
), depth(viewid, n) AS (
  SELECT oid, 0 FROM pg_catalog.pg_class WHERE relkind = 'm'
  UNION
  SELECT dep.viewid, depth.n + 1 FROM dep JOIN depth ON dep.base = depth.viewid WHERE depth.n < 64
)
SELECT n.nspname, c.relname
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN (SELECT viewid, max(n) AS n FROM depth GROUP BY viewid) d ON d.viewid = c.oid
WHERE c.relkind = 'm' AND c.relispopulated AND n.nspname <> '` + captureSchema + `'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e WHERE e.classid = 'pg_catalog.pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e')
ORDER BY d.n, c.oid`

// listMatviews returns the populated materialized views among the copied
// schemas in dependency order (pre-data creates them empty; they are
// refreshed at the end).
func listMatviews(ctx context.Context, q *pgx.Conn) ([]string, error) {
	rows, _ := q.Query(ctx, matviewsSQL)
	var out []string
	var s, n string
	_, err := pgx.ForEachRow(rows, []any{&s, &n}, func() error {
		out = append(out, pgutil.QualifiedName(s, n))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("source: list materialized views: %s", oneLine(err))
	}
	return out, nil
}

// refreshMatviews populates materialized views on the target, in the
// order given (dependency order), and analyzes each.
func refreshMatviews(ctx context.Context, conn *pgx.Conn, views []string) error {
	for _, v := range views {
		if err := conn.PgConn().Exec(ctx, "REFRESH MATERIALIZED VIEW "+v).Close(); err != nil {
			return fmt.Errorf("target: refresh materialized view %s: %s", v, oneLine(err))
		}
		if err := conn.PgConn().Exec(ctx, "ANALYZE "+v).Close(); err != nil {
			return fmt.Errorf("target: analyze %s: %s", v, oneLine(err))
		}
	}
	return nil
}

// targetHasTables returns the copied tables that already exist on the target.
func targetHasTables(ctx context.Context, conn *pgx.Conn, tables []*Table) ([]string, error) {
	var out []string
	for _, t := range tables {
		var exists bool
		err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", t.QName()).Scan(&exists)
		if err != nil {
			return nil, fmt.Errorf("target: %s", oneLine(err))
		}
		if exists {
			out = append(out, t.QName())
		}
	}
	return out, nil
}
