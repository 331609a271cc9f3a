package pgcopy

import (
	"context"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"
)

// A resumed copy reads the source in a new snapshot. Parts are ctid page
// ranges, and rows updated between the two snapshots move to other pages:
// ranges read in different snapshots duplicate some rows and miss others.
// So every table is read whole in one snapshot, and so is every partition
// tree (change capture logs a partitioned table's changes under its root,
// and a delta round can skip changes per root only): a unit with anything
// left to load is reloaded whole where an earlier run loaded part of it in
// another snapshot.
//
// Units loaded in a later snapshot than the copy's baseline are recorded on
// the target (pgdelta.RecordTableSnapshots): delta rounds skip their
// changes that snapshot already holds, so every change still lands exactly
// once.

// unit is the top of a table's partition tree (the table itself when it is
// not a partition): what change capture calls a table.
type unit [2]string

// partitionRoots maps each table to its unit, read on the source.
func partitionRoots(ctx context.Context, src *pgx.Conn, tables []*Table) (map[*Table]unit, error) {
	oids := make([]uint32, len(tables))
	for i, t := range tables {
		oids[i] = t.OID
	}
	rows, _ := src.Query(ctx, `SELECT o.oid, n.nspname, c.relname
		FROM unnest($1::oid[]) o(oid)
		JOIN pg_catalog.pg_class c ON c.oid = coalesce(pg_catalog.pg_partition_root(o.oid), o.oid)
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace`, oids)
	root := map[uint32]unit{}
	var oid uint32
	var s, n string
	if _, err := pgx.ForEachRow(rows, []any{&oid, &s, &n}, func() error {
		root[oid] = unit{s, n}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("source: partition roots: %s", oneLine(err))
	}
	out := make(map[*Table]unit, len(tables))
	for _, t := range tables {
		u, ok := root[t.OID]
		if !ok {
			u = unit{t.Schema, t.Name}
		}
		out[t] = u
	}
	return out, nil
}

// partSnapshot is the snapshot a done part was read in; parts recorded
// before snapshots were kept are from the first run's.
func partSnapshot(p *Part, baseline string) string {
	if p.state.Snapshot == "" {
		return baseline
	}
	return p.state.Snapshot
}

// settleUnits runs after reconcile on a resumed copy: in every unit with a
// part left to load, tables holding parts read in another snapshot than
// this run's are truncated and reloaded whole. It returns those tables.
func (l *loader) settleUnits(ctx context.Context, dst *pgx.Conn, tables []*Table, units map[*Table]unit, baseline string) ([]string, error) {

	pending := map[unit]bool{}
	for _, t := range tables {
		for _, p := range t.Parts {
			if !p.state.Done {
				pending[units[t]] = true
			}
		}
	}
	var redone []string
	for _, t := range tables {
		if !pending[units[t]] {
			continue
		}
		stale := false
		for _, p := range t.Parts {
			stale = stale || (p.state.Done && partSnapshot(p, baseline) != l.snapshot)
		}
		if !stale {
			continue
		}
		if err := l.redo(ctx, dst, t); err != nil {
			return nil, err
		}
		redone = append(redone, t.QName())
	}
	return redone, nil
}

// redo empties a table on the target and forgets its parts.
func (l *loader) redo(ctx context.Context, dst *pgx.Conn, t *Table) error {
	if _, err := dst.Exec(ctx, "TRUNCATE ONLY "+t.QName()); err != nil {
		return fmt.Errorf("target: truncate %s: %s", t.QName(), oneLine(err))
	}
	for _, p := range t.Parts {
		p.state = partState{}
		if err := l.put(p); err != nil {
			return err
		}
	}
	return nil
}

// unitSnapshots returns the units whose data is from another snapshot than
// the baseline, with that snapshot. After settleUnits every part of a unit
// is from one snapshot.
func unitSnapshots(tables []*Table, units map[*Table]unit, baseline string) (map[[2]string]string, error) {
	out := map[[2]string]string{}
	seen := map[unit]string{}
	for _, t := range tables {
		u := units[t]
		for _, p := range t.Parts {
			s := partSnapshot(p, baseline)
			if prev, ok := seen[u]; ok && prev != s {
				return nil, fmt.Errorf("%s.%s: loaded in two snapshots (%s, %s): copy again without --resume", u[0], u[1], prev, s)
			}
			seen[u] = s
		}
	}
	keys := make([]unit, 0, len(seen))
	for u := range seen {
		keys = append(keys, u)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+"."+keys[i][1] < keys[j][0]+"."+keys[j][1] })
	for _, u := range keys {
		if seen[u] != baseline {
			out[u] = seen[u]
		}
	}
	return out, nil
}
