package pgdelta

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/pgutil"
)

// A target role without superuser cannot set session_replication_role =
// replica, which is how the apply normally keeps the target's own triggers
// and foreign keys out of the replay. The replay must not run them: the
// source's log already holds every change its triggers and cascades made
// (a target trigger would change them again, a cascade would delete or
// update twice), and set-based statements apply a valid history in an order
// a NO ACTION key could refuse mid-batch. So, as the tables' owner may,
// each apply transaction
//   - disables the enabled user triggers of the tables it writes (and of
//     their partitions) and re-enables each in its original mode before
//     commit, and
//   - drops the foreign keys touching those tables and re-adds them before
//     commit as NOT VALID (no scan per batch), recording them in
//     kwickmig.pending_fk; the end of the run validates them (one scan per
//     key per run), which proves the final state satisfies every key.
// Nothing of this is visible to other sessions: it all commits or rolls
// back with the batch.

// pendingDDL records foreign keys re-added NOT VALID and not yet validated.
const pendingDDL = `CREATE TABLE IF NOT EXISTS kwickmig.pending_fk (
	table_name text NOT NULL,      -- quoted schema.table
	constraint_name text NOT NULL,
	PRIMARY KEY (table_name, constraint_name)
)`

type userTrigger struct {
	rel, name string // quoted relation, trigger name
	mode      byte   // pg_trigger.tgenabled: O, A or R
}

type foreignKey struct {
	rel, name, def string
	// partitioned: the key is on or references a partitioned table. It is
	// re-added whole (validated by the ADD): NOT VALID is refused on a
	// partitioned table (PostgreSQL < 18), and a key referencing one has a
	// copy per referenced partition that VALIDATE on the key leaves NOT
	// VALID (PostgreSQL 15) — and that cannot be validated one by one.
	partitioned bool
	valid       bool
}

// guard is what one batch turned off.
type guard struct {
	triggers []userTrigger
	fks      []foreignKey
}

// batchRelations returns the oids of the tables a batch writes, with every
// partition below them.
func (a *applier) batchRelations(rows []logRow) []string {
	seen := map[int32]bool{}
	var out []string
	for _, r := range rows {
		if info := a.tables[r.TID]; info != nil && !seen[r.TID] {
			seen[r.TID] = true
			out = append(out, info.qname())
		}
	}
	return out
}

// relationsSQL expands tables ($1, quoted names) to them and their
// partitions, parents first.
// (pg_partition_tree lists nothing for a table that is not partitioned.)
const relationsSQL = `
SELECT relid FROM (
	SELECT t.name::regclass::oid AS relid, 0 AS level, t.ord FROM unnest($1::text[]) WITH ORDINALITY t(name, ord)
	UNION ALL
	SELECT p.relid::oid, p.level, t.ord FROM unnest($1::text[]) WITH ORDINALITY t(name, ord)
	CROSS JOIN LATERAL pg_partition_tree(t.name::regclass) p WHERE p.level > 0
) r ORDER BY level, ord, relid`

// disable turns off the target's user triggers and foreign keys around the
// tables rows touch, in tx.
func (a *applier) disable(ctx context.Context, tx pgx.Tx, rows []logRow) (*guard, error) {
	names := a.batchRelations(rows)
	g := &guard{}
	if len(names) == 0 {
		return g, nil
	}
	rels, err := pgx.CollectRows(mustQuery(ctx, tx, relationsSQL, names), pgx.RowTo[uint32])
	if err != nil {
		return nil, fmt.Errorf("target: list partitions: %w", err)
	}
	trows, err := tx.Query(ctx, `
		SELECT `+qrel("t.tgrelid")+`, t.tgname, t.tgenabled::text
		FROM unnest($1::oid[]) WITH ORDINALITY r(oid, ord)
		JOIN pg_trigger t ON t.tgrelid = r.oid
		WHERE NOT t.tgisinternal AND t.tgenabled <> 'D'
		ORDER BY r.ord, t.tgname`, rels)
	if err != nil {
		return nil, fmt.Errorf("target: list triggers: %w", err)
	}
	var mode string
	var tr userTrigger
	if _, err := pgx.ForEachRow(trows, []any{&tr.rel, &tr.name, &mode}, func() error {
		tr.mode = mode[0]
		g.triggers = append(g.triggers, tr)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("target: list triggers: %w", err)
	}
	frows, err := tx.Query(ctx, `
		SELECT DISTINCT `+qrel("c.conrelid")+`, c.conname, pg_get_constraintdef(c.oid),
			k.relkind = 'p' OR r.relkind = 'p', c.convalidated
		FROM pg_constraint c JOIN pg_class k ON k.oid = c.conrelid JOIN pg_class r ON r.oid = c.confrelid
		WHERE c.contype = 'f' AND c.conparentid = 0 AND (c.conrelid = ANY ($1::oid[]) OR c.confrelid = ANY ($1::oid[]))
		ORDER BY 1, 2`, rels)
	if err != nil {
		return nil, fmt.Errorf("target: list foreign keys: %w", err)
	}
	var fk foreignKey
	if _, err := pgx.ForEachRow(frows, []any{&fk.rel, &fk.name, &fk.def, &fk.partitioned, &fk.valid}, func() error {
		g.fks = append(g.fks, fk)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("target: list foreign keys: %w", err)
	}
	for _, t := range g.triggers {
		if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s DISABLE TRIGGER %s", t.rel, pgutil.QuoteIdent(t.name))); err != nil {
			return nil, fmt.Errorf("target: disable trigger %s on %s (the target role must own the table): %w", t.name, t.rel, err)
		}
	}
	for _, f := range g.fks {
		if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s", f.rel, pgutil.QuoteIdent(f.name))); err != nil {
			return nil, fmt.Errorf("target: drop foreign key %s on %s for the apply (the target role must own the table): %w", f.name, f.rel, err)
		}
	}
	return g, nil
}

// restore re-adds the foreign keys and re-enables the triggers, in tx.
func (g *guard) restore(ctx context.Context, tx pgx.Tx) error {
	// Deferred checks still queued (deferrable unique keys) would make
	// ALTER TABLE refuse ("pending trigger events"): run them now.
	if _, err := tx.Exec(ctx, "SET CONSTRAINTS ALL IMMEDIATE"); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	for _, f := range g.fks {
		def, pending := f.def, false
		if f.valid && !f.partitioned && !strings.HasSuffix(def, "NOT VALID") {
			def, pending = def+" NOT VALID", true
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", f.rel, pgutil.QuoteIdent(f.name), def)); err != nil {
			return fmt.Errorf("target: re-add foreign key %s on %s: %w", f.name, f.rel, err)
		}
		if pending {
			if _, err := tx.Exec(ctx, `INSERT INTO kwickmig.pending_fk VALUES ($1, $2) ON CONFLICT DO NOTHING`, f.rel, f.name); err != nil {
				return fmt.Errorf("target: record foreign key %s: %w", f.name, err)
			}
		}
	}
	for _, t := range g.triggers {
		how := map[byte]string{'O': "ENABLE", 'A': "ENABLE ALWAYS", 'R': "ENABLE REPLICA"}[t.mode]
		if how == "" {
			how = "ENABLE"
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s %s TRIGGER %s", t.rel, how, pgutil.QuoteIdent(t.name))); err != nil {
			return fmt.Errorf("target: re-enable trigger %s on %s: %w", t.name, t.rel, err)
		}
	}
	return nil
}

// validatePending validates the foreign keys batches re-added NOT VALID
// (this run's and any an interrupted run left), each in its own
// transaction. A key the final state violates is an error naming it.
func validatePending(ctx context.Context, target *pgx.Conn) (int, error) {
	var exists bool
	if err := target.QueryRow(ctx, `SELECT to_regclass('kwickmig.pending_fk') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	rows, err := target.Query(ctx, `SELECT table_name, constraint_name FROM kwickmig.pending_fk ORDER BY 1, 2`)
	if err != nil {
		return 0, fmt.Errorf("target: read pending foreign keys: %w", err)
	}
	type pk struct{ rel, name string }
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pk, error) {
		var p pk
		return p, r.Scan(&p.rel, &p.name)
	})
	if err != nil {
		return 0, fmt.Errorf("target: read pending foreign keys: %w", err)
	}
	for _, p := range list {
		err := pgx.BeginFunc(ctx, target, func(tx pgx.Tx) error {
			var still bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_constraint
				WHERE conrelid = to_regclass($1) AND conname = $2 AND NOT convalidated)`, p.rel, p.name).Scan(&still); err != nil {
				return err
			}
			if still {
				if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s", p.rel, pgutil.QuoteIdent(p.name))); err != nil {
					return fmt.Errorf("foreign key %s on %s does not hold after the apply: %w", p.name, p.rel, err)
				}
			}

			_, err := tx.Exec(ctx, `DELETE FROM kwickmig.pending_fk WHERE table_name = $1 AND constraint_name = $2`, p.rel, p.name)
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("target: %w", err)
		}
	}
	return len(list), nil
}

// qrel is SQL for the quoted schema.name of the relation with oid expr,
// independent of search_path (it is stored in kwickmig.pending_fk).
func qrel(expr string) string {
	return "(SELECT format('%I.%I', n.nspname, k2.relname) FROM pg_class k2 JOIN pg_namespace n ON n.oid = k2.relnamespace WHERE k2.oid = " + expr + ")"
}

// mustQuery returns rows whose error, if any, CollectRows reports.
func mustQuery(ctx context.Context, tx pgx.Tx, sql string, args ...any) pgx.Rows {
	rows, _ := tx.Query(ctx, sql, args...)
	return rows
}
