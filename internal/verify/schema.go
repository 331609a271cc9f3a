package verify

import (
	"fmt"
	"slices"
	"strings"
)

// SchemaDiff is one difference in tables, columns, indexes or constraints.
// Index and constraint names may differ (they are compared by definition);
// everything else must be equal.
type SchemaDiff struct {
	Table  string `json:"table"`
	Kind   string `json:"kind"` // table_missing, table_extra, column_missing, column_extra, column_type, not_null, index, constraint
	Detail string `json:"detail"`
}

// tablePair is a table present on both sides and the columns to compare
// (the source's columns, in its order, that the target also has).
type tablePair struct {
	src, dst *table
	cols     []column
}

// compareSchema matches tables by schema and name and lists every schema
// difference. Tables of the target the source does not have are reported
// unless the run is limited to some tables (filtered).
func compareSchema(srcTables, dstTables []*table, filtered bool) ([]tablePair, []SchemaDiff) {
	var diffs []SchemaDiff
	add := func(t, kind, format string, args ...any) {
		diffs = append(diffs, SchemaDiff{Table: t, Kind: kind, Detail: fmt.Sprintf(format, args...)})
	}
	dstByID := map[string]*table{}
	for _, t := range dstTables {
		dstByID[t.id()] = t
	}
	seen := map[string]bool{}
	var pairs []tablePair
	for _, s := range srcTables {
		d := dstByID[s.id()]
		seen[s.id()] = true
		if d == nil {
			add(s.id(), "table_missing", "table %s is not on the target", s.id())
			continue
		}
		p := tablePair{src: s, dst: d}
		dcols := map[string]column{}
		for _, c := range d.Columns {
			dcols[c.Name] = c
		}
		scols := map[string]bool{}
		for _, c := range s.Columns {
			scols[c.Name] = true
			dc, ok := dcols[c.Name]
			switch {
			case !ok:
				add(s.id(), "column_missing", "column %q is not on the target", c.Name)
				continue
			case dc.Type != c.Type:
				add(s.id(), "column_type", "column %q is %s on the source, %s on the target", c.Name, c.Type, dc.Type)
			case dc.NotNull != c.NotNull:
				add(s.id(), "not_null", "column %q: NOT NULL %v on the source, %v on the target", c.Name, c.NotNull, dc.NotNull)
			}
			p.cols = append(p.cols, c)
		}
		for _, c := range d.Columns {
			if !scols[c.Name] {
				add(s.id(), "column_extra", "column %q is only on the target", c.Name)
			}
		}
		for _, m := range multisetDiff(s.Indexes, d.Indexes) {
			add(s.id(), "index", "%s", m)
		}
		for _, m := range multisetDiff(s.Checks, d.Checks) {
			add(s.id(), "constraint", "%s", m)
		}
		pairs = append(pairs, p)
	}
	if !filtered {
		for _, d := range dstTables {
			if !seen[d.id()] {
				add(d.id(), "table_extra", "table %s is only on the target", d.id())
			}
		}
	}
	return pairs, diffs
}

// multisetDiff describes the definitions only one side has.
func multisetDiff(src, dst []string) []string {
	count := map[string]int{}
	for _, s := range src {
		count[s]++
	}
	for _, d := range dst {
		count[d]--
	}
	var out []string
	for def, n := range count {
		switch {
		case n > 0:
			out = append(out, "only on the source: "+def)
		case n < 0:
			out = append(out, "only on the target: "+def)
		}
	}
	slices.Sort(out)
	return out
}

// keyColumns returns the key's columns among the compared ones, or nil if
// the key (or one of its columns) is not on both sides alike.
func (p *tablePair) keyColumns() []column {
	if len(p.src.Key) == 0 || !slices.Equal(p.src.Key, p.dst.Key) {
		return nil
	}
	var out []column
	for _, k := range p.src.Key {
		i := slices.IndexFunc(p.cols, func(c column) bool { return c.Name == k })
		if i < 0 {
			return nil
		}
		out = append(out, p.cols[i])
	}
	return out
}

func quotedList(cols []column) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = quoteIdent(c.Name)
	}
	return strings.Join(parts, ", ")
}
