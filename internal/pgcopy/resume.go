package pgcopy

import (
	"context"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/pgdelta"
	"github.com/kwick/kwickmig/internal/pgutil"
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
// With change capture installed, units an earlier run finished are then
// brought forward to this run's snapshot through the change log
// (pgdelta.CatchUp), once their keys are built and before triggers and
// foreign keys: the copy is of one snapshot again, and foreign keys hold.
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

// followCatchUps moves done parts to the snapshot the target records their
// unit was caught up to (pgdelta.CatchUp), in case a run crashed between
// the catch-up's commit and its checkpoint write.
func (l *loader) followCatchUps(ctx context.Context, dst *pgx.Conn, tables []*Table, units map[*Table]unit, baseline string) error {
	steps, err := pgdelta.CatchUps(ctx, dst)
	if err != nil || len(steps) == 0 {
		return err
	}
	next := map[[3]string]string{}
	for _, s := range steps {
		next[[3]string{s.Table[0], s.Table[1], s.From}] = s.To
	}
	for _, t := range tables {
		u := units[t]
		for _, p := range t.Parts {
			if !p.state.Done {
				continue
			}
			s := partSnapshot(p, baseline)
			for i := 0; i < len(steps); i++ {
				to, ok := next[[3]string{u[0], u[1], s}]
				if !ok {
					break
				}
				s = to
			}
			if s != partSnapshot(p, baseline) {
				p.state.Snapshot = s
				if err := l.put(p); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// catchUpPlan returns, by snapshot, the units every part of which an
// earlier run loaded in that snapshot (not this run's).
func (l *loader) catchUpPlan(tables []*Table, units map[*Table]unit, baseline string) map[string][]unit {
	snap := map[unit]string{}
	pending := map[unit]bool{}
	for _, t := range tables {
		u := units[t]
		for _, p := range t.Parts {
			if !p.state.Done {
				pending[u] = true
				continue
			}
			snap[u] = partSnapshot(p, baseline)
		}
	}
	plan := map[string][]unit{}
	for u, s := range snap {
		if !pending[u] && s != l.snapshot {
			plan[s] = append(plan[s], u)
		}
	}
	for _, us := range plan {
		sort.Slice(us, func(i, j int) bool { return us[i][0]+"."+us[i][1] < us[j][0]+"."+us[j][1] })
	}
	return plan
}

// catchUp brings the units of plan forward to this run's snapshot through
// the change log, and records their parts at it. Units not under capture
// stay as they are (with a warning).
func (l *loader) catchUp(ctx context.Context, opts *Options, tables []*Table, units map[*Table]unit, plan map[string][]unit, warnings *[]string) error {
	if len(plan) == 0 {
		return nil
	}
	src, err := pgutil.Connect(ctx, pgutil.Source, opts.SourceURL)
	if err != nil {
		return err
	}
	defer src.Close(context.Background())
	dst, err := pgutil.Connect(ctx, pgutil.Target, opts.TargetURL)
	if err != nil {
		return err
	}
	defer dst.Close(context.Background())
	froms := make([]string, 0, len(plan))
	for from := range plan {
		froms = append(froms, from)
	}
	sort.Strings(froms)
	moved := map[unit]bool{}
	for _, from := range froms {
		us := make([][2]string, len(plan[from]))
		for i, u := range plan[from] {
			us[i] = u
		}
		n, uncaptured, err := pgdelta.CatchUp(ctx, src, dst, from, l.snapshot, us, pgdelta.Options{Logger: opts.Logger})
		if err != nil {
			return err
		}
		if opts.testHookCaughtUp != nil {
			if err := opts.testHookCaughtUp(); err != nil {
				return err
			}
		}
		skip := map[unit]bool{}
		for _, u := range uncaptured {
			skip[u] = true
			msg := fmt.Sprintf("resume: %s.%s is not under change capture: it stays as of the earlier snapshot %s", u[0], u[1], from)
			opts.Logger.Warn(msg)
			*warnings = append(*warnings, msg)
		}
		for _, u := range plan[from] {
			moved[u] = !skip[u]
		}
		opts.Logger.Info("resume: tables finished by an earlier run caught up to this run's snapshot",
			"tables", len(us)-len(uncaptured), "changes", n, "from", from, "to", l.snapshot)
	}
	for _, t := range tables {
		if !moved[units[t]] {
			continue
		}
		for _, p := range t.Parts {
			p.state.Snapshot = l.snapshot
			if err := l.put(p); err != nil {
				return err
			}
		}
	}
	return nil
}
