package pgdelta

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kwick/kwickmig/internal/pgcatalog"
	"github.com/kwick/kwickmig/internal/pgutil"
)

// sourceDDL creates the source's kwickmig schema (inside the install
// transaction, so a failed install leaves nothing behind).
var sourceDDL = []string{
	`CREATE SCHEMA kwickmig`,
	`CREATE TABLE kwickmig.meta (key text PRIMARY KEY, value text NOT NULL)`,
	`CREATE TABLE kwickmig.tables (
		tid         integer PRIMARY KEY,
		relid       oid NOT NULL UNIQUE,
		schema_name text NOT NULL,
		table_name  text NOT NULL,
		key_cols    text[] NOT NULL,
		cols        text[] NOT NULL,        -- logged columns (not generated), in data order
		fingerprint text NOT NULL,
		ddl         text                    -- tables added after install (capture add): their schema, for the target
	)`,
	`CREATE TABLE kwickmig.log (
		id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		txid      xid8 NOT NULL DEFAULT pg_current_xact_id(),
		tid       integer NOT NULL,
		op        "char" NOT NULL,  -- I U D T
		key       text[],           -- key of the row written (I, U) or deleted (D), as text
		old_key   text[],           -- U only, when the update changed the key's text
		data      text[],           -- the new row (I, U): each column's text form, as COPY has it
		logged_at timestamptz NOT NULL DEFAULT now()
	)`,
	`CREATE INDEX log_txid ON kwickmig.log (txid)`,
	`CREATE TABLE kwickmig.tick (
		id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		snapshot pg_snapshot NOT NULL,
		taken_at timestamptz NOT NULL DEFAULT now(),
		mode     text NOT NULL,                 -- direct | offline
		round    integer,
		state    text NOT NULL DEFAULT 'taken'  -- taken | applied | exported
	)`,
	partitionsDDL,
	`REVOKE ALL ON SCHEMA kwickmig FROM PUBLIC`,
}

// InstallOptions tune capture install.
type InstallOptions struct {
	// Exclude lists tables not to capture ("schema.table" or "table"); the
	// bulk copy must exclude them too.
	Exclude []string
	// AllowNoKey captures tables without a usable key too. Their changes
	// are applied by full-row matching: an update or delete changes exactly
	// one target row whose every logged column has the same text as the
	// source row had (any one of identical rows: they are interchangeable).
	// Each such update or delete scans the table, so it suits append-mostly
	// tables (audit logs); inserts are as fast as anywhere.
	AllowNoKey bool
	// LockTimeout bounds the wait for each table's lock (CREATE TRIGGER
	// blocks writers briefly). Zero means 10 s.
	LockTimeout time.Duration
	// StatementTriggers captures plain tables by statement triggers with
	// transition tables (stmtcapture.go): several times cheaper for
	// statements that change many rows, dearer for one-row statements.
	// Recorded; capture add follows it.
	StatementTriggers bool
}

// InstallResult is what install did.
type InstallResult struct {
	Tables           []string `json:"tables"`
	Excluded         []string `json:"excluded,omitempty"`
	NoKey            []string `json:"no_key,omitempty"` // captured with --allow-no-key
	AlreadyInstalled bool     `json:"already_installed"`
	// Upgraded: an install by an older kwickmig had its trigger functions
	// replaced (capture role, output functions) in place.
	Upgraded bool `json:"upgraded,omitempty"`
}

// ErrNoKey is matched by Install's error when captured tables lack a key.
var ErrNoKey = errors.New("tables without a primary key or unique not-null key")

// Install creates the change log and the capture triggers on every user
// table of the source, in one transaction. It refuses, before creating
// anything, when a table has no usable key (all such tables are named). It
// does nothing if capture is already installed.
func Install(ctx context.Context, source *pgx.Conn, opts InstallOptions) (InstallResult, error) {
	var res InstallResult
	installed, err := CaptureInstalled(ctx, source)
	if err != nil {
		return res, err
	}
	if installed {
		res.AlreadyInstalled = true
		err := source.QueryRow(ctx, `SELECT coalesce(array_agg(format('%s.%s', schema_name, table_name) ORDER BY tid), '{}') FROM kwickmig.tables`).Scan(&res.Tables)
		if err != nil {
			return res, err
		}
		res.Upgraded, err = upgradeCapture(ctx, source)
		return res, err
	}
	all, err := listTables(ctx, source)
	if err != nil {
		return res, fmt.Errorf("source: %w", err)
	}
	// Each --exclude-table name must name one table (package pgcatalog):
	// a typo would otherwise capture the table, and a bare name would
	// exclude it in every schema.
	excl, err := resolveTables(opts.Exclude, all)
	if err != nil {
		hint := ""
		if errors.Is(err, pgcatalog.ErrNotFound) {
			hint = " (partitions follow their parent)"
		}
		return res, fmt.Errorf("source: capture not installed: --exclude-table: %w%s", err, hint)
	}
	isExcluded := map[uint32]bool{}
	var exclNames []string
	for _, t := range excl {
		isExcluded[t.OID] = true
		exclNames = append(exclNames, t.display())
	}
	var tables, noKey []table
	for _, t := range all {
		switch {
		case isExcluded[t.OID]:
			res.Excluded = append(res.Excluded, t.display())
		case t.Key == nil && !opts.AllowNoKey:
			noKey = append(noKey, t)
		case t.Key == nil:
			res.NoKey = append(res.NoKey, t.display())
			t.Key = []string{}
			tables = append(tables, t)
		default:
			tables = append(tables, t)
		}
	}
	if len(noKey) > 0 {
		return res, fmt.Errorf("source: capture not installed: %d %w: %s (add a primary key, leave them out with --exclude-table, or capture them with --allow-no-key: full-row matching, one table scan per update or delete)",
			len(noKey), ErrNoKey, strings.Join(sortedNames(noKey), ", "))
	}
	lt := opts.LockTimeout
	if lt == 0 {
		lt = 10 * time.Second
	}
	role, err := captureRoleName(ctx, source)
	if err != nil {
		return res, fmt.Errorf("source: %w", err)
	}
	err = pgx.BeginFunc(ctx, source, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", lt.Milliseconds())); err != nil {
			return err
		}
		for _, ddl := range sourceDDL {
			if _, err := tx.Exec(ctx, ddl); err != nil {
				return fmt.Errorf("create kwickmig schema: %w", err)
			}
		}
		if err := createCaptureRole(ctx, tx, role); err != nil {
			return err
		}
		for i, t := range tables {
			tid := i + 1
			logged, err := loggedColumns(ctx, tx.Conn(), t)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO kwickmig.tables VALUES ($1, $2, $3, $4, $5, $6, $7)`,
				tid, t.OID, t.Schema, t.Name, t.Key, logged, t.Fingerprint); err != nil {
				return err
			}
			forms, err := textForms(ctx, tx.Conn(), t.OID)
			if err != nil {
				return fmt.Errorf("%s: %w", t.display(), err)
			}
			stmts, err := captureSQL(ctx, tx.Conn(), tid, t, logged, forms, role, opts.StatementTriggers) // stmtcapture.go
			if err != nil {
				return err
			}
			for _, stmt := range stmts {
				if _, err := tx.Exec(ctx, stmt); err != nil {
					if isLockTimeout(err) {
						return fmt.Errorf("could not lock %s within %s (transactions are writing to it); nothing was installed: retry at a quieter moment or raise --lock-timeout",
							t.display(), lt)
					}
					return fmt.Errorf("install trigger on %s: %w", t.display(), err)
				}
			}
			// Row triggers on a partitioned table are cloned to its
			// partitions; TRUNCATE triggers are not, and a partition can be
			// truncated on its own.
			if err := partitionTruncateTriggers(ctx, tx, tid, t); err != nil {
				return err
			}
			res.Tables = append(res.Tables, t.display())
		}
		parts, err := sourcePartitions(ctx, tx.Conn())
		if err != nil {
			return err
		}
		if err := recordPartitions(ctx, tx, parts); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO kwickmig.meta VALUES
			('version', '1'),
			('install_txid', pg_current_xact_id()::text),
			('installed_at', now()::text),
			('excluded', $1),
			('capture_role', $2),
			('capture_by', $3)`, strings.Join(exclNames, "\n"), role, captureBy(opts.StatementTriggers))
		return err
	})
	if err != nil {
		return InstallResult{}, fmt.Errorf("source: capture install: %w", err)
	}
	return res, nil
}

// triggerSQL generates the per-table row trigger function and triggers.
// Every identifier is quoted. Values are logged in their text form, written
// by each column type's output function (forms), as COPY writes them, so
// applying them with casts back to the column types is exact for every
// type: numeric scale, float NaN/Infinity and -0, json whitespace, jsonb
// 'null' versus NULL, arrays with bounds, bytea, intervals, enums, domains.
// pinned: as stmtTriggerSQL's (stmtcapture.go): SET clauses, or, where the
// column types allow, none and the settings checked on each call.
func triggerSQL(tid int, t table, cols []string, forms map[string]textForm, role string, pinned bool) []string {
	fn := fmt.Sprintf("kwickmig.capture_%d", tid)
	textArray := func(rec string, names []string) string { return textArrayOf(forms, rec, names) }
	// old_key: for a keyed table, the old key when an update changed it; for
	// a table without a key (--allow-no-key), the whole old row of every
	// update and delete, to find the target row by.
	updOld, delOld := fmt.Sprintf("CASE WHEN %s OPERATOR(pg_catalog.=) k THEN NULL ELSE %[1]s END", textArray("OLD", t.Key)), "NULL"
	if len(t.Key) == 0 {
		updOld, delOld = textArray("OLD", cols), textArray("OLD", cols)
	}
	header, prologue, epilogue := captureFuncHeader(fn), "", ""
	if !pinned {
		header = "CREATE FUNCTION " + fn + "() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER\n"
		prologue, epilogue = settingsPrologue, settingsEpilogue
	}
	body := header + "AS " + dollarQuote(fmt.Sprintf(`DECLARE
	k pg_catalog.text[];
	saved pg_catalog.text[];
BEGIN
	%[7]s	IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
		INSERT INTO kwickmig.log (tid, op, key, data) VALUES (%[1]d, 'I', %[2]s, %[4]s);
	ELSIF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN
		k := %[2]s;
		INSERT INTO kwickmig.log (tid, op, key, old_key, data) VALUES (%[1]d, 'U', k, %[5]s, %[4]s);
	ELSIF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN
		INSERT INTO kwickmig.log (tid, op, key, old_key) VALUES (%[1]d, 'D', %[3]s, %[6]s);
	ELSE
		INSERT INTO kwickmig.log (tid, op, key) VALUES (%[1]d, 'T', ARRAY[TG_TABLE_SCHEMA::pg_catalog.text, TG_TABLE_NAME::pg_catalog.text]);
	END IF;
	%[8]s	RETURN NULL;
END
`, tid, textArray("NEW", t.Key), textArray("OLD", t.Key), textArray("NEW", cols), updOld, delOld, prologue, epilogue))

	q := t.qname()
	return []string{
		body,
		handOver(fn, role),
		fmt.Sprintf("CREATE TRIGGER kwickmig_capture AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION %s()", q, fn),
		fmt.Sprintf("CREATE TRIGGER kwickmig_capture_truncate AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s()", q, fn),
		// ALWAYS: also fire for sessions with session_replication_role = replica.
		fmt.Sprintf("ALTER TABLE %s ENABLE ALWAYS TRIGGER kwickmig_capture", q),
		fmt.Sprintf("ALTER TABLE %s ENABLE ALWAYS TRIGGER kwickmig_capture_truncate", q),
	}
}

func isLockTimeout(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "55P03"
}

// partitionTruncateTriggers adds the TRUNCATE trigger to every partition
// (at any depth) of a partitioned table; the log row names the partition.
func partitionTruncateTriggers(ctx context.Context, tx pgx.Tx, tid int, t table) error {
	rows, err := tx.Query(ctx, `SELECT n.nspname, c.relname FROM pg_partition_tree($1::oid) p
		JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE p.relid <> $1::oid::regclass`, t.OID)
	if err != nil {
		return fmt.Errorf("list partitions of %s: %w", t.display(), err)
	}
	var parts []table
	var p table
	_, err = pgx.ForEachRow(rows, []any{&p.Schema, &p.Name}, func() error {
		parts = append(parts, p)
		return nil
	})
	if err != nil {
		return fmt.Errorf("list partitions of %s: %w", t.display(), err)
	}
	for _, p := range parts {
		for _, stmt := range []string{
			fmt.Sprintf("CREATE TRIGGER kwickmig_capture_truncate AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION kwickmig.capture_%d()", p.qname(), tid),
			fmt.Sprintf("ALTER TABLE %s ENABLE ALWAYS TRIGGER kwickmig_capture_truncate", p.qname()),
		} {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("install trigger on partition %s: %w", p.display(), err)
			}
		}
	}
	return nil
}

// Status is the source's capture backlog.
type Status struct {
	Installed   bool      `json:"installed"`
	InstalledAt string    `json:"installed_at,omitempty"`
	Tables      int       `json:"tables"`
	LastTick    string    `json:"last_tick,omitempty"` // last applied or exported tick
	LastRound   int       `json:"last_round"`
	Rows        int64     `json:"backlog_rows"`
	Bytes       int64     `json:"backlog_bytes"`
	Oldest      time.Time `json:"oldest_change,omitempty"`
	OldestAge   string    `json:"oldest_age,omitempty"`
	// SinceInstall is true before the first delta round: the backlog then
	// also counts changes the bulk copy already contains.
	SinceInstall bool `json:"since_install"`
	// Drift lists what final-delta would refuse to run on, each
	// "schema.table (why)", from the same check; empty when there is none.
	Drift []string `json:"drift,omitempty"`
	// Uncaptured are tables created after install (also in Drift).
	Uncaptured []string `json:"uncaptured,omitempty"`
	// NewPartitions were created or attached since the last delta run,
	// which takes them over ("schema.partition of schema.table").
	NewPartitions []string `json:"new_partitions,omitempty"`
}

// CaptureStatus measures the backlog: log rows not yet applied (direct) or
// exported (offline) by a finished round, their size and the oldest's age.
func CaptureStatus(ctx context.Context, source *pgx.Conn) (Status, error) {
	var st Status
	ok, err := CaptureInstalled(ctx, source)
	if err != nil || !ok {
		return st, err
	}
	st.Installed = true
	err = source.QueryRow(ctx, `SELECT (SELECT value FROM kwickmig.meta WHERE key = 'installed_at'),
		(SELECT count(*) FROM kwickmig.tables)`).Scan(&st.InstalledAt, &st.Tables)
	if err != nil {
		return st, fmt.Errorf("source: capture status: %w", err)
	}
	d, err := sourceDrift(ctx, source)
	if err != nil {
		return st, err
	}
	gone, fresh, err := partitionStatus(ctx, source)
	if err != nil {
		return st, err
	}
	st.Drift, st.Uncaptured, st.NewPartitions = append(d.Problems, gone...), d.Uncaptured, fresh
	b, err := backlog(ctx, source)
	if err != nil {
		return st, err
	}
	st.LastRound, st.LastTick, st.SinceInstall = b.LastRound, b.LastTick, b.SinceInstall
	st.Rows, st.Bytes, st.Oldest = b.Rows, b.Bytes, b.Oldest
	if !b.Oldest.IsZero() {
		st.OldestAge = time.Since(b.Oldest).Round(time.Second).String()
	}
	return st, nil
}

// Remove drops the capture triggers, their functions and the kwickmig
// schema (with its change log) from the source. Removing what is not
// installed is not an error.
func Remove(ctx context.Context, source *pgx.Conn, lockTimeout time.Duration) (bool, error) {
	ok, err := CaptureInstalled(ctx, source)
	if err != nil || !ok {
		return false, err
	}
	// An export (final-delta --out) holds this lock while it reads the log.
	if err := advisoryLock(ctx, source, "source"); err != nil {
		return false, err
	}
	defer source.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(lockKey)) //nolint:errcheck
	if lockTimeout == 0 {
		lockTimeout = 10 * time.Second
	}
	err = pgx.BeginFunc(ctx, source, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", lockTimeout.Milliseconds())); err != nil {
			return err
		}
		var role string
		if err := tx.QueryRow(ctx, `SELECT coalesce((SELECT value FROM kwickmig.meta WHERE key = 'capture_role'), '')`).Scan(&role); err != nil {
			return err
		}
		// The triggers depend on the functions in kwickmig, so CASCADE drops
		// them with the schema, whatever the tables are called by now.
		if _, err := tx.Exec(ctx, `DROP SCHEMA kwickmig CASCADE`); err != nil {
			return err
		}
		return dropCaptureRole(ctx, tx, role)
	})
	if err != nil {
		return false, fmt.Errorf("source: capture remove: %w", err)
	}
	return true, nil
}

// RemoveTarget drops the target's kwickmig schema (applied rounds and
// batches), once the migration is over. It refuses while a delta run holds
// the target. Removing what is not there is not an error.
func RemoveTarget(ctx context.Context, target *pgx.Conn, lockTimeout time.Duration) (bool, error) {
	var ok bool
	if err := target.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'kwickmig')`).Scan(&ok); err != nil {
		return false, fmt.Errorf("target: read schemas: %w", err)
	}
	if !ok {
		return false, nil
	}
	if err := advisoryLock(ctx, target, "target"); err != nil {
		return false, err
	}
	defer target.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(lockKey)) //nolint:errcheck
	if lockTimeout == 0 {
		lockTimeout = 10 * time.Second
	}
	err := pgx.BeginFunc(ctx, target, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", lockTimeout.Milliseconds())); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DROP SCHEMA kwickmig CASCADE`)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("target: remove kwickmig bookkeeping: %w", err)
	}
	return true, nil
}

// loggedColumns are the columns of t the capture trigger logs: all but the
// generated ones (the target computes those itself).
func loggedColumns(ctx context.Context, conn *pgx.Conn, t table) ([]string, error) {
	cols, err := tableColumns(ctx, conn, t.Schema, t.Name)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", t.display(), err)
	}
	var logged []string
	for _, c := range cols {
		if !c.Generated {
			logged = append(logged, c.Name)
		}
	}
	return logged, nil
}

// handOver gives trigger function fn to the capture role. Besides
// membership in the role (createCaptureRole), a non-superuser installer
// needs the new owner to hold CREATE on the function's schema; the role
// gets it only for the statement and never keeps it (ownership stays),
// so code running as the capture role cannot create objects in kwickmig.
func handOver(fn, role string) string {
	q := pgutil.QuoteIdent(role)
	return fmt.Sprintf("GRANT CREATE ON SCHEMA kwickmig TO %[2]s; ALTER FUNCTION %[1]s() OWNER TO %[2]s; REVOKE CREATE ON SCHEMA kwickmig FROM %[2]s", fn, q)
}
