package pgdelta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kwick/kwickmig/internal/pgutil"
)

// Partitions follow the source. Row changes in any partition are captured
// through the captured parent (PostgreSQL clones its row trigger to every
// partition, also to those created or attached later), but:
//
//   - the target needs the partition before a round routes rows into it;
//   - a table attached as a partition brings rows that were never logged,
//     and a partition truncated before kwickmig gave it a TRUNCATE trigger
//     (those are not cloned) drops rows whose inserts were logged;
//   - a partition detached or dropped on the source keeps its rows on the
//     target, where nothing in the log would ever remove them.
//
// So every delta run (before its tick) compares the source's partitions
// with those recorded in kwickmig.partitions. A new one gets its TRUNCATE
// trigger and, in one transaction that blocks its writers, its whole
// content is logged: a TRUNCATE of that partition (unless a foreign key
// references it) and an insert of every row. Applied after every earlier
// change, that leaves the target partition exactly as the source's was at
// that moment, however it got there. The partitions are created on the
// target (same bounds) before anything is applied; a partition the target
// has and the source no longer has is refused, naming it.

// partitionDef is one partition of a captured table, at any depth.
type partitionDef struct {
	Schema       string `json:"schema"`
	Name         string `json:"name"`
	ParentSchema string `json:"parent_schema"`
	ParentName   string `json:"parent_name"`
	Bound        string `json:"bound"`                  // FOR VALUES … or DEFAULT
	PartitionBy  string `json:"partition_by,omitempty"` // its own partition key, if sub-partitioned
	Level        int    `json:"level"`                  // 1: a partition of the captured table
	TID          int32  `json:"tid"`                    // the captured table it belongs to
	// Grants are the source partition's privileges (grantee, privilege,
	// grantable) other than its owner's: a partition is a table of its own
	// for direct access, and gets them on the target too.
	Grants      []partGrant `json:"grants,omitempty"`
	relid       uint32
	parentRelid uint32
	referenced  bool // a foreign key references it or an ancestor
}

// partGrant is one entry of a partition's ACL ("PUBLIC" for grantee 0).
type partGrant struct {
	Grantee   string `json:"grantee"`
	Privilege string `json:"privilege"`
	Grantable bool   `json:"grantable,omitempty"`
}

func (p partitionDef) qname() string       { return pgutil.QualifiedName(p.Schema, p.Name) }
func (p partitionDef) display() string     { return displayName(p.Schema, p.Name) }
func (p partitionDef) parentQname() string { return pgutil.QualifiedName(p.ParentSchema, p.ParentName) }
func (p partitionDef) parentDisplay() string {
	return displayName(p.ParentSchema, p.ParentName)
}

// sourcePartitionsSQL lists the partition trees of the captured tables from
// pg_inherits (a plain catalog read, consistent with the transaction's
// snapshot), parents before children.
const sourcePartitionsSQL = `
WITH RECURSIVE tree AS (
	SELECT i.inhrelid AS relid, i.inhparent AS parent, 1 AS level, t.tid
	FROM kwickmig.tables t JOIN pg_catalog.pg_inherits i ON i.inhparent = t.relid
  UNION ALL
	SELECT i.inhrelid, i.inhparent, tr.level + 1, tr.tid
	FROM tree tr JOIN pg_catalog.pg_inherits i ON i.inhparent = tr.relid
)
SELECT tr.relid, tr.parent, tr.level, tr.tid, n.nspname::text, c.relname::text, pn.nspname::text, p.relname::text,
	pg_catalog.pg_get_expr(c.relpartbound, c.oid),
	CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) ELSE '' END,
	EXISTS (SELECT 1 FROM pg_catalog.pg_constraint f
		WHERE f.contype = 'f' AND f.confrelid IN (SELECT relid FROM pg_catalog.pg_partition_ancestors(c.oid))),
	(SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(
			'grantee', CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(a.grantee)::text END,
			'privilege', a.privilege_type, 'grantable', a.is_grantable)), '[]')::text
		FROM pg_catalog.aclexplode(c.relacl) a WHERE a.grantee <> c.relowner)
FROM tree tr
JOIN pg_catalog.pg_class c ON c.oid = tr.relid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_class p ON p.oid = tr.parent JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
WHERE c.relispartition
ORDER BY tr.level, n.nspname, c.relname`

// sourcePartitions reads the partitions of every captured table.
func sourcePartitions(ctx context.Context, conn *pgx.Conn) ([]partitionDef, error) {
	rows, err := conn.Query(ctx, sourcePartitionsSQL)
	if err != nil {
		return nil, fmt.Errorf("source: list partitions: %w", err)
	}
	defs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (partitionDef, error) {
		var p partitionDef
		var grants string
		err := r.Scan(&p.relid, &p.parentRelid, &p.Level, &p.TID, &p.Schema, &p.Name, &p.ParentSchema, &p.ParentName,
			&p.Bound, &p.PartitionBy, &p.referenced, &grants)
		if err == nil {
			err = json.Unmarshal([]byte(grants), &p.Grants)
		}
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("source: list partitions: %w", err)
	}
	return defs, nil
}

// partitionsDDL is the source's record of the partitions kwickmig knows:
// those present at install or taken over since. state 'gone': detached or
// dropped since, and still to be confirmed absent on the target.
const partitionsDDL = `CREATE TABLE kwickmig.partitions (
		relid       oid PRIMARY KEY,
		tid         integer NOT NULL,
		schema_name text NOT NULL,
		table_name  text NOT NULL,
		parent      text NOT NULL,
		state       text NOT NULL DEFAULT 'attached'
	)`

// recordPartitions records defs as known (attached), in tx.
func recordPartitions(ctx context.Context, tx pgx.Tx, defs []partitionDef) error {
	for _, p := range defs {
		if _, err := tx.Exec(ctx, `INSERT INTO kwickmig.partitions (relid, tid, schema_name, table_name, parent)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (relid) DO UPDATE SET tid = EXCLUDED.tid, schema_name = EXCLUDED.schema_name,
				table_name = EXCLUDED.table_name, parent = EXCLUDED.parent, state = 'attached'`,
			p.relid, p.TID, p.Schema, p.Name, p.parentDisplay()); err != nil {
			return fmt.Errorf("source: record partition %s: %w", p.display(), err)
		}
	}
	return nil
}

// ensurePartitionRecord creates kwickmig.partitions for a capture installed
// by an older kwickmig, knowing the partitions there are now.
func ensurePartitionRecord(ctx context.Context, source *pgx.Conn) error {
	var ok bool
	if err := source.QueryRow(ctx, `SELECT to_regclass('kwickmig.partitions') IS NOT NULL`).Scan(&ok); err != nil || ok {
		return err
	}
	return pgx.BeginFunc(ctx, source, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, partitionsDDL); err != nil {
			return fmt.Errorf("source: create kwickmig.partitions: %w", err)
		}
		defs, err := sourcePartitions(ctx, tx.Conn())
		if err != nil {
			return err
		}
		return recordPartitions(ctx, tx, defs)
	})
}

// followPartitions brings the partitions of the captured tables up to date
// before a delta run takes its tick: partitions gone from the source are
// marked (and refused while target still has them); new ones get their
// TRUNCATE trigger and their content logged; with a target (final-delta
// --target), the target gets every source partition it lacks. Export
// (target nil) lists the partitions in each round's manifest instead, and
// import-delta does the target's part.
func followPartitions(ctx context.Context, source, target *pgx.Conn) error {
	if err := ensurePartitionRecord(ctx, source); err != nil {
		return err
	}
	defs, err := sourcePartitions(ctx, source)
	if err != nil {
		return err
	}
	known := map[uint32]bool{}
	rows, err := source.Query(ctx, `SELECT relid FROM kwickmig.partitions WHERE state = 'attached'`)
	if err != nil {
		return fmt.Errorf("source: read kwickmig.partitions: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uint32])
	if err != nil {
		return fmt.Errorf("source: read kwickmig.partitions: %w", err)
	}
	for _, id := range ids {
		known[id] = true
	}
	now := map[uint32]bool{}
	var fresh []partitionDef
	for _, p := range defs {
		now[p.relid] = true
		if !known[p.relid] {
			fresh = append(fresh, p)
		}
	}
	var gone []uint32
	for _, id := range ids {
		if !now[id] {
			gone = append(gone, id)
		}
	}
	if len(gone) > 0 {
		// Marked, not forgotten: capture status reports them, and one that
		// is attached again is new again (its rows are logged anew).
		if _, err := source.Exec(ctx, `UPDATE kwickmig.partitions SET state = 'gone' WHERE relid = ANY($1)`, gone); err != nil {
			return fmt.Errorf("source: record detached partitions: %w", err)
		}
	}
	if target != nil {
		caps, err := capturedTables(ctx, source)
		if err != nil {
			return err
		}
		parents := make([]table, len(caps))
		for i, c := range caps {
			parents[i] = c.table
		}
		if err := checkTargetPartitions(ctx, target, parents, defs); err != nil {
			return err
		}
		// The target has none of the gone partitions either.
		if _, err := source.Exec(ctx, `DELETE FROM kwickmig.partitions WHERE state = 'gone'`); err != nil {
			return fmt.Errorf("source: forget detached partitions: %w", err)
		}
	}
	if len(fresh) > 0 {
		if err := takeOverPartitions(ctx, source, fresh); err != nil {
			return err
		}
	}
	if target != nil {
		return createTargetPartitions(ctx, target, defs)
	}
	return nil
}

// takeOverPartitions gives new partitions their TRUNCATE trigger and logs
// their content, in one source transaction that holds each new partition
// against writers: every change logged before it is older than the
// snapshot the rows are read in, every change after it is newer.
func takeOverPartitions(ctx context.Context, source *pgx.Conn, fresh []partitionDef) error {
	caps, err := capturedTables(ctx, source)
	if err != nil {
		return err
	}
	byTID := map[int32]captured{}
	for _, c := range caps {
		byTID[c.TID] = c
	}
	isFresh := map[uint32]bool{}
	for _, p := range fresh {
		isFresh[p.relid] = true
	}
	lastDone, _, err := lastDoneTick(ctx, source)
	if err != nil {
		return err
	}
	if lastDone == "" {
		lastDone = emptySnapshot
	}
	return pgx.BeginFunc(ctx, source, func(tx pgx.Tx) error {
		// The text forms the capture trigger pins; nothing resolved through
		// the search_path (partition constraints are read qualified).
		for _, s := range []string{"SET LOCAL lock_timeout = 10000", "SET LOCAL extra_float_digits = 1", "SET LOCAL datestyle = ISO",
			"SET LOCAL timezone = UTC", "SET LOCAL intervalstyle = postgres", "SET LOCAL bytea_output = hex",
			"SET LOCAL search_path = pg_catalog, pg_temp"} {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("source: %s: %w", s, err)
			}
		}
		for _, p := range fresh {
			c, ok := byTID[p.TID]
			if !ok {
				return fmt.Errorf("source: partition %s: table id %d is not captured", p.display(), p.TID)
			}
			// SHARE ROW EXCLUSIVE: what CREATE TRIGGER takes; it waits for
			// the partition's writers and holds off new ones until commit.
			if _, err := tx.Exec(ctx, "LOCK TABLE "+p.qname()+" IN SHARE ROW EXCLUSIVE MODE"); err != nil {
				if isLockTimeout(err) {
					return fmt.Errorf("source: could not lock new partition %s within 10s (transactions are writing to it); nothing was applied: run again at a quieter moment", p.display())
				}
				return fmt.Errorf("source: lock new partition %s: %w", p.display(), err)
			}
			if !isFresh[p.parentRelid] {
				// before the trigger: creating it changes the catalog row
				// whose age tells when the partition arrived
				if err := pruneTakenOverLog(ctx, tx, p, c, lastDone); err != nil {
					return err
				}
			}
			var has bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = $1 AND tgname = 'kwickmig_capture_truncate')`,
				p.relid).Scan(&has); err != nil {
				return fmt.Errorf("source: read triggers of %s: %w", p.display(), err)
			}
			if !has {
				for _, s := range []string{
					fmt.Sprintf("CREATE TRIGGER kwickmig_capture_truncate AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION kwickmig.capture_%d()", p.qname(), p.TID),
					fmt.Sprintf("ALTER TABLE %s ENABLE ALWAYS TRIGGER kwickmig_capture_truncate", p.qname()),
				} {
					if _, err := tx.Exec(ctx, s); err != nil {
						return fmt.Errorf("source: install trigger on partition %s: %w", p.display(), err)
					}
				}
			}
			if isFresh[p.parentRelid] {
				continue // its rows are logged with its new parent's
			}
			if !p.referenced {
				if _, err := tx.Exec(ctx, `INSERT INTO kwickmig.log (tid, op, key) VALUES ($1, 'T', ARRAY[$2, $3])`,
					p.TID, p.Schema, p.Name); err != nil {
					return fmt.Errorf("source: log partition %s: %w", p.display(), err)
				}
			}
			forms, err := textForms(ctx, tx.Conn(), p.relid)
			if err != nil {
				return fmt.Errorf("source: %s: %w", p.display(), err)
			}
			if _, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO kwickmig.log (tid, op, key, data) SELECT %d, 'I', %s, %s FROM %s AS p`,
				p.TID, textArrayOf(forms, "p", c.Key), textArrayOf(forms, "p", c.Cols), p.qname())); err != nil {
				return fmt.Errorf("source: log the rows of new partition %s: %w", p.display(), err)
			}
		}
		return recordPartitions(ctx, tx, fresh)
	})
}

// textArrayOf is the text[] of the named columns of record rec, as the
// capture trigger builds it.
func textArrayOf(forms map[string]textForm, rec string, names []string) string {
	if len(names) == 0 {
		return "'{}'::pg_catalog.text[]"
	}
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = forms[n].expr(rec)
	}
	return "ARRAY[" + strings.Join(parts, ", ") + "]"
}

// targetPartitionsSQL lists the partitions (any depth) of the named tables
// on the target: $1 schemas, $2 names.
const targetPartitionsSQL = `
WITH RECURSIVE roots AS (
	SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	JOIN unnest($1::text[], $2::text[]) AS r(s, t) ON r.s = n.nspname AND r.t = c.relname
	WHERE c.relkind = 'p'
), tree AS (
	SELECT i.inhrelid AS relid, i.inhparent AS parent FROM roots JOIN pg_catalog.pg_inherits i ON i.inhparent = roots.oid
  UNION ALL
	SELECT i.inhrelid, i.inhparent FROM tree JOIN pg_catalog.pg_inherits i ON i.inhparent = tree.relid
)
SELECT n.nspname::text, c.relname::text, pn.nspname::text, p.relname::text
FROM tree
JOIN pg_catalog.pg_class c ON c.oid = tree.relid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_class p ON p.oid = tree.parent JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace`

// checkTargetPartitions refuses, before anything is applied, when the target
// has a partition of one of parents that the source no longer has: its rows
// would stay on the target for good.
func checkTargetPartitions(ctx context.Context, target *pgx.Conn, parents []table, defs []partitionDef) error {
	schemas, names := make([]string, len(parents)), make([]string, len(parents))
	for i, p := range parents {
		schemas[i], names[i] = p.Schema, p.Name
	}
	rows, err := target.Query(ctx, targetPartitionsSQL, schemas, names)
	if err != nil {
		return fmt.Errorf("target: list partitions: %w", err)
	}
	src := map[string]bool{}
	for _, d := range defs {
		src[d.display()+" of "+d.parentDisplay()] = true
	}
	var extra []string
	var s, n, ps, pn string
	_, err = pgx.ForEachRow(rows, []any{&s, &n, &ps, &pn}, func() error {
		if k := displayName(s, n) + " of " + displayName(ps, pn); !src[k] {
			extra = append(extra, k)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("target: list partitions: %w", err)
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return fmt.Errorf("target: %w: partition %s is no longer a partition on the source (detached or dropped there); nothing was applied: attach it again on the source, or detach or drop it on the target too (its rows are not on the source any more)",
			ErrSchemaChanged, strings.Join(extra, ", partition "))
	}
	return nil
}

// createTargetPartitions creates, in one target transaction, every
// partition in defs the target lacks, with the source's bounds (and
// partition key, for sub-partitioned ones); parents come first in defs.
func createTargetPartitions(ctx context.Context, target *pgx.Conn, defs []partitionDef) error {
	if len(defs) == 0 {
		return nil
	}
	return pgx.BeginFunc(ctx, target, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = 30000"); err != nil {
			return fmt.Errorf("target: %w", err)
		}
		for _, p := range defs {
			var ps, pn *string
			err := tx.QueryRow(ctx, `SELECT pn.nspname::text, pc.relname::text
				FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
				LEFT JOIN pg_catalog.pg_inherits i ON i.inhrelid = c.oid
				LEFT JOIN pg_catalog.pg_class pc ON pc.oid = i.inhparent LEFT JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace
				WHERE n.nspname = $1 AND c.relname = $2`, p.Schema, p.Name).Scan(&ps, &pn)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
			case err != nil:
				return fmt.Errorf("target: read %s: %w", p.display(), err)
			case ps != nil && pn != nil && *ps == p.ParentSchema && *pn == p.ParentName:
				continue
			default:
				return fmt.Errorf("target: %w: %s exists but is not a partition of %s as on the source; nothing was applied",
					ErrSchemaChanged, p.display(), p.parentDisplay())
			}
			ddl := fmt.Sprintf("CREATE TABLE %s PARTITION OF %s %s", p.qname(), p.parentQname(), p.Bound)
			if p.PartitionBy != "" {
				ddl += " PARTITION BY " + p.PartitionBy
			}
			if _, err := tx.Exec(ctx, ddl); err != nil {
				var pe *pgconn.PgError
				if errors.As(err, &pe) && pe.Code == "55P03" {
					return fmt.Errorf("target: could not lock %s within 30s to create partition %s; nothing was applied", p.parentDisplay(), p.display())
				}
				return fmt.Errorf("target: create partition %s of %s: %w; nothing was applied", p.display(), p.parentDisplay(), err)
			}
			if err := grantPartition(ctx, tx, p); err != nil {
				return fmt.Errorf("target: privileges of partition %s: %w; nothing was applied", p.display(), err)
			}
		}
		return nil
	})
}

// grantPartition gives a partition just created on the target the source
// partition's privileges: what the target's default privileges granted is
// revoked first (the owner's own entries stay), then the source's grants
// are made. Without it a role that reads the partition directly (not
// through its parent) can on the source and cannot on the target.
func grantPartition(ctx context.Context, tx pgx.Tx, p partitionDef) error {
	rows, err := tx.Query(ctx, `SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(a.grantee)::text END
		FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
		WHERE c.oid = $1::regclass AND a.grantee <> c.relowner`, p.qname())
	if err != nil {
		return err
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	role := func(r string) string {
		if r == "PUBLIC" {
			return r
		}
		return pgutil.QuoteIdent(r)
	}
	for _, r := range have {
		if _, err := tx.Exec(ctx, fmt.Sprintf("REVOKE ALL ON TABLE %s FROM %s", p.qname(), role(r))); err != nil {
			return err
		}
	}
	for _, g := range p.Grants {
		sql := fmt.Sprintf("GRANT %s ON TABLE %s TO %s", g.Privilege, p.qname(), role(g.Grantee))
		if g.Grantable {
			sql += " WITH GRANT OPTION"
		}
		if _, err := tx.Exec(ctx, sql); err != nil {
			return err
		}
	}
	return nil
}

// completeManifest records in an exported round's manifest the source's
// partitions, read after its tick (every partition a change of the round
// went through existed by then), and the schema of tables added after
// install.
func completeManifest(ctx context.Context, source *pgx.Conn, m *manifest) error {
	defs, err := sourcePartitions(ctx, source)
	if err != nil {
		return err
	}
	// A partition that arrived between followPartitions and the tick has
	// rows this round cannot bring: refuse the round (its tick is left
	// unexported; the next export takes a new one over everything since).
	rows, err := source.Query(ctx, `SELECT relid FROM kwickmig.partitions WHERE state = 'attached'`)
	if err != nil {
		return fmt.Errorf("source: read kwickmig.partitions: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uint32])
	if err != nil {
		return fmt.Errorf("source: read kwickmig.partitions: %w", err)
	}
	known := map[uint32]bool{}
	for _, id := range ids {
		known[id] = true
	}
	for _, d := range defs {
		if !known[d.relid] {
			return fmt.Errorf("source: partition %s of %s appeared while round %d was being exported; nothing of it was written: run final-delta --out again",
				d.display(), d.parentDisplay(), m.Round)
		}
	}
	m.Partitions, m.PartitionsListed = defs, true
	caps, err := capturedTables(ctx, source)
	if err != nil {
		return err
	}
	ddl := map[int32]string{}
	for _, c := range caps {
		ddl[c.TID] = c.DDL
	}
	for i := range m.Tables {
		m.Tables[i].DDL = ddl[m.Tables[i].TID]
	}
	return nil
}

// prepareImportTarget does on the target what final-delta does before a
// round: create the tables added after install, refuse partitions the
// source no longer had at the round's tick, create those the target lacks.
// Manifests from before partitions were listed are taken as they are.
func prepareImportTarget(ctx context.Context, target *pgx.Conn, m manifest) error {
	var added []captured
	for _, t := range m.Tables {
		if t.DDL != "" {
			added = append(added, captured{TID: t.TID, DDL: t.DDL, table: table{Schema: t.Schema, Name: t.Name}})
		}
	}
	if err := createAddedTables(ctx, target, added); err != nil {
		return fmt.Errorf("round %d: %w", m.Round, err)
	}
	if !m.PartitionsListed {
		return nil
	}
	parents := make([]table, len(m.Tables))
	for i, t := range m.Tables {
		parents[i] = table{Schema: t.Schema, Name: t.Name}
	}
	if err := checkTargetPartitions(ctx, target, parents, m.Partitions); err != nil {
		return fmt.Errorf("round %d: %w", m.Round, err)
	}
	if err := createTargetPartitions(ctx, target, m.Partitions); err != nil {
		return fmt.Errorf("round %d: %w", m.Round, err)
	}
	return nil
}

// partitionStatus lists, for capture status, the recorded partitions the
// source no longer has (gone) and the partitions the next delta run will
// take over (fresh).
func partitionStatus(ctx context.Context, source *pgx.Conn) (gone, fresh []string, err error) {
	var ok bool
	if err := source.QueryRow(ctx, `SELECT to_regclass('kwickmig.partitions') IS NOT NULL`).Scan(&ok); err != nil || !ok {
		return nil, nil, err
	}
	defs, err := sourcePartitions(ctx, source)
	if err != nil {
		return nil, nil, err
	}
	now := map[uint32]bool{}
	for _, p := range defs {
		now[p.relid] = true
	}
	rows, err := source.Query(ctx, `SELECT relid, schema_name, table_name, parent, state FROM kwickmig.partitions ORDER BY schema_name, table_name`)
	if err != nil {
		return nil, nil, fmt.Errorf("source: read kwickmig.partitions: %w", err)
	}
	known := map[uint32]bool{}
	var relid uint32
	var s, n, parent, state string
	_, err = pgx.ForEachRow(rows, []any{&relid, &s, &n, &parent, &state}, func() error {
		if !now[relid] {
			gone = append(gone, fmt.Sprintf("%s (partition of %s detached or dropped: final-delta refuses while the target still has it)", displayName(s, n), parent))
		} else if state == "attached" {
			known[relid] = true
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("source: read kwickmig.partitions: %w", err)
	}
	for _, p := range defs {
		if !known[p.relid] {
			fresh = append(fresh, p.display()+" of "+p.parentDisplay())
		}
	}
	return gone, fresh, nil
}
