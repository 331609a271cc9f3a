package pgcopy

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/pgcatalog"
	"github.com/kwick/kwickmig/internal/pgutil"
)

// captureSchema is the change-capture schema on the source (package
// pgdelta); it is never copied.
const captureSchema = "kwickmig"

// Column is one copied column: generated and dropped columns are left out.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"` // format_type()
}

// Table is one ordinary table (or leaf partition) to copy.
type Table struct {
	OID     uint32   `json:"-"`
	Schema  string   `json:"schema"`
	Name    string   `json:"name"`
	Columns []Column `json:"columns"`
	Size    int64    `json:"size"`   // pg_relation_size at the start of the copy
	Binary  bool     `json:"binary"` // COPY in binary format (else text)
	Parts   []*Part  `json:"-"`
}

// QName is the quoted schema-qualified name.
func (t *Table) QName() string { return pgutil.QualifiedName(t.Schema, t.Name) }

// Key identifies the table in the checkpoint, the manifest and the report.
func (t *Table) Key() string { return t.Schema + "." + t.Name }

// columnList returns the quoted column list "(a, "B")", or "" for a table
// without columns (whose rows still count).
func (t *Table) columnList() string {
	if len(t.Columns) == 0 {
		return ""
	}
	q := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		q[i] = pgutil.QuoteIdent(c.Name)
	}
	return "(" + strings.Join(q, ", ") + ")"
}

func (t *Table) copyFormat() string {
	if t.Binary {
		return "(FORMAT binary)"
	}
	return "(FORMAT text)"
}

// Sequence is a sequence and its value in the snapshot.
type Sequence struct {
	Schema    string `json:"schema"`
	Name      string `json:"name"`
	LastValue int64  `json:"last_value"`
	IsCalled  bool   `json:"is_called"`
	ownerOID  uint32
}

// QName is the quoted schema-qualified name.
func (s *Sequence) QName() string { return pgutil.QualifiedName(s.Schema, s.Name) }

const columnsSQL = `
SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid
FROM pg_attribute a
WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attrelid, a.attnum`

const typesSQL = `
SELECT oid, typtype::text, typbasetype, typelem, typcategory::text,
       typsend <> 0 AND typreceive <> 0
FROM pg_type`

const sequencesSQL = `
SELECT n.nspname, c.relname,
       coalesce((SELECT d.refobjid FROM pg_depend d
                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                   AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1), 0)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'S' AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', '` + captureSchema + `')
  AND n.nspname NOT LIKE 'pg\_temp%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY n.nspname, c.relname`

type pgType struct {
	typtype, category string
	base, elem        uint32
	sendRecv          bool
}

// firstNormalOID: OIDs below this are built in and equal on every cluster.
const firstNormalOID = 16384

// binaryOK reports whether a type's binary COPY form is portable between
// clusters: built-in scalars, enums and domains over them are; composites,
// arrays of user-defined types (their binary form embeds the element OID)
// and types without send/receive functions are copied as text.
func binaryOK(types map[uint32]pgType, oid uint32, depth int) bool {
	t, ok := types[oid]
	if !ok || depth > 20 {
		return false
	}
	switch {
	case t.typtype == "d":
		return binaryOK(types, t.base, depth+1)
	case !t.sendRecv, t.typtype == "c", t.typtype == "p":
		return false
	case t.category == "A" && t.elem != 0:
		if t.elem >= firstNormalOID {
			return false
		}
		return binaryOK(types, t.elem, depth+1)
	case t.typtype == "r", t.typtype == "m":
		return oid < firstNormalOID
	}
	return true
}

// listTables reads the tables to copy, with their columns, in the snapshot
// of q, applying the include and exclude lists. It also returns the tables
// left out (for pg_dump --exclude-table).
func listTables(ctx context.Context, q *pgx.Conn, include, exclude []string) ([]*Table, []*Table, error) {
	cat, err := pgcatalog.ListTables(ctx, q)
	if err != nil {
		return nil, nil, fmt.Errorf("source: %w", err)
	}
	var all []*Table
	for _, c := range cat {
		if !c.Partitioned { // rows live in the leaves
			all = append(all, &Table{OID: c.OID, Schema: c.Schema, Name: c.Table, Size: c.Size})
		}
	}
	if len(all) == 0 {
		// Most often a wrong database name: copying nothing and exiting 0
		// would let the runbook go on with an empty target.
		return nil, nil, fmt.Errorf("source: database %q has no tables; nothing to copy (wrong database name?)", q.Config().Database)
	}
	tables, err := filterTables(all, include, exclude)
	if err != nil {
		return nil, nil, err
	}
	if len(tables) == 0 {
		return nil, nil, nil
	}
	types := map[uint32]pgType{}
	rows, _ := q.Query(ctx, typesSQL)
	var oid uint32
	var t pgType
	if _, err := pgx.ForEachRow(rows, []any{&oid, &t.typtype, &t.base, &t.elem, &t.category, &t.sendRecv}, func() error {
		types[oid] = t
		return nil
	}); err != nil {
		return nil, nil, fmt.Errorf("source: list types: %w", err)
	}
	byOID := map[uint32]*Table{}
	oids := make([]uint32, 0, len(tables))
	for _, t := range tables {
		t.Binary = true
		byOID[t.OID] = t
		oids = append(oids, t.OID)
	}
	rows, _ = q.Query(ctx, columnsSQL, oids)
	var rel, typ uint32
	var c Column
	if _, err := pgx.ForEachRow(rows, []any{&rel, &c.Name, &c.Type, &typ}, func() error {
		t := byOID[rel]
		t.Columns = append(t.Columns, c)
		if !binaryOK(types, typ, 0) {
			t.Binary = false
		}
		return nil
	}); err != nil {
		return nil, nil, fmt.Errorf("source: list columns: %w", err)
	}
	return tables, leftOut(all, tables), nil
}

// filterTables applies --table and --exclude-table by the naming rule of
// package pgcatalog: each name must match exactly one table.
func filterTables(all []*Table, include, exclude []string) ([]*Table, error) {
	names := make([]pgcatalog.Name, len(all))
	for i, t := range all {
		names[i] = pgcatalog.Name{Schema: t.Schema, Table: t.Name}
	}
	keep := map[*Table]bool{}
	if len(include) == 0 {
		for _, t := range all {
			keep[t] = true
		}
	}
	in, err := pgcatalog.ResolveAll(include, names)
	if err != nil {
		return nil, fmt.Errorf("source: --table: %w", err)
	}
	for _, i := range in {
		keep[all[i]] = true
	}
	out, err := pgcatalog.ResolveAll(exclude, names)
	if err != nil {
		return nil, fmt.Errorf("source: --exclude-table: %w", err)
	}
	for _, i := range out {
		delete(keep, all[i])
	}
	var kept []*Table
	for _, t := range all {
		if keep[t] {
			kept = append(kept, t)
		}
	}
	return kept, nil
}

// listSequences reads the sequences that belong with the copied tables (all
// of them when no --table was given) and their current values.
func listSequences(ctx context.Context, q *pgx.Conn, tables []*Table, filtered bool) ([]*Sequence, error) {
	rows, _ := q.Query(ctx, sequencesSQL)
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Sequence, error) {
		s := &Sequence{}
		return s, r.Scan(&s.Schema, &s.Name, &s.ownerOID)
	})
	if err != nil {
		return nil, fmt.Errorf("source: list sequences: %w", err)
	}
	copied := map[uint32]bool{}
	for _, t := range tables {
		copied[t.OID] = true
	}
	var out []*Sequence
	for _, s := range all {
		if s.ownerOID != 0 && !copied[s.ownerOID] {
			continue // belongs to a table left out
		}
		if s.ownerOID == 0 && filtered {
			continue
		}
		err := q.QueryRow(ctx, "SELECT last_value, is_called FROM "+s.QName()).Scan(&s.LastValue, &s.IsCalled)
		if err != nil {
			return nil, fmt.Errorf("source: read sequence %s: %s", s.QName(), oneLine(err))
		}
		out = append(out, s)
	}
	return out, nil
}

// lockTables takes ACCESS SHARE locks, as pg_dump does, so the copied
// tables cannot be dropped or altered until the copy ends. A table dropped
// or renamed since the table list was read fails here, by name.
func lockTables(ctx context.Context, q *pgx.Conn, tables []*Table) error {
	for _, t := range tables {
		if _, err := q.Exec(ctx, "LOCK TABLE "+t.QName()+" IN ACCESS SHARE MODE"); err != nil {
			return fmt.Errorf("source: table %s was dropped or renamed during the copy: %s", t.QName(), oneLine(err))
		}
	}
	return nil
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

func leftOut(all, kept []*Table) []*Table {
	in := map[*Table]bool{}
	for _, t := range kept {
		in[t] = true
	}
	var out []*Table
	for _, t := range all {
		if !in[t] {
			out = append(out, t)
		}
	}
	return out
}
