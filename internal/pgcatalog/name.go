// Package pgcatalog holds what every kwickmig command that names database
// tables shares: one rule for turning what the user typed into a table.
//
// The rule, for db copy/export/import --table and --exclude-table, db
// capture install --exclude-table, db capture add TABLE and verify db
// --table:
//
//   - A name is "table" or "schema.table". A part in double quotes is taken
//     exactly as written ("" inside quotes is one quote), so it may hold
//     dots, spaces, quotes and capitals: "My Schema"."Order Lines".
//   - An unquoted part matches a table whose name is exactly as typed, or
//     that name in lower case (as PostgreSQL folds unquoted identifiers).
//   - A bare table name matches the table of that name in any schema the
//     command lists (never system schemas nor kwickmig's own). The search
//     path is not consulted: it depends on the role and the session, and
//     the source and target may differ.
//   - In a name without double quotes, dots are read every way they could
//     be meant: a.b.c is schema "a" table "b.c", schema "a.b" table "c", or
//     table "a.b.c" in any schema. Once any part is quoted, the name is read
//     as SQL reads it: an unquoted dot separates schema and table.
//   - A name must match exactly one table. A name matching none is refused;
//     a name matching several (the same table in two schemas, "Orders" and
//     "orders", a dotted name read two ways) is refused, naming them all.
//     Nothing is ever picked silently.
//
// There are no wildcards: no command accepted them before, and a pattern
// that grows with the schema would change the copied set unnoticed.
package pgcatalog

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/kwick/kwickmig/internal/pgutil"
)

// Name is one table's schema and name, as in the catalog.
type Name struct{ Schema, Table string }

// String is schema.table as a user would type it back: each part in double
// quotes only where it needs them.
func (n Name) String() string { return Display(n.Schema, n.Table) }

// Display is schema.table with each part quoted only where needed.
func Display(schema, table string) string { return QuoteIfNeeded(schema) + "." + QuoteIfNeeded(table) }

// QuoteIfNeeded returns s bare when it is a lower-case identifier, else in
// double quotes.
func QuoteIfNeeded(s string) string {
	plain := s != ""
	for i, r := range s {
		if !(r >= 'a' && r <= 'z' || r == '_' || (i > 0 && r >= '0' && r <= '9')) {
			plain = false
		}
	}
	if plain {
		return s
	}
	return pgutil.QuoteIdent(s)
}

// segment is one dot-separated piece of a typed name.
type segment struct {
	text   string
	quoted bool // wholly or partly in double quotes: never case-folded
}

// Spec is a parsed table name.
type Spec struct {
	raw    string
	segs   []segment
	quoted bool // some part is quoted: dots separate, as in SQL
}

func (s Spec) String() string { return s.raw }

// Parse reads a typed table name. It fails on an empty name or part and on
// an unterminated quote.
func Parse(raw string) (Spec, error) {
	sp := Spec{raw: raw}
	var cur strings.Builder
	inQuote, quoted := false, false
	for i := 0; i < len(raw); i++ {
		ch := raw[i]
		switch {
		case ch == '"' && inQuote && i+1 < len(raw) && raw[i+1] == '"':
			cur.WriteByte('"')
			i++
		case ch == '"':
			inQuote, quoted = !inQuote, true
		case ch == '.' && !inQuote:
			sp.segs = append(sp.segs, segment{cur.String(), quoted})
			cur.Reset()
			quoted = false
		default:
			cur.WriteByte(ch)
		}
	}
	sp.segs = append(sp.segs, segment{cur.String(), quoted})
	if inQuote {
		return Spec{}, fmt.Errorf("table name %s: unterminated double quote", raw)
	}
	for _, s := range sp.segs {
		if s.text == "" {
			return Spec{}, fmt.Errorf("table name %s: want table or schema.table", raw)
		}
		sp.quoted = sp.quoted || s.quoted
	}
	if sp.quoted && len(sp.segs) > 2 {
		return Spec{}, fmt.Errorf("table name %s: want table or schema.table (quote a name that holds dots)", raw)
	}
	return sp, nil
}

// join joins segs[i:j] with dots, folding unquoted segments if fold.
func (s Spec) join(i, j int, fold bool) string {
	parts := make([]string, 0, j-i)
	for _, g := range s.segs[i:j] {
		if fold && !g.quoted {
			parts = append(parts, strings.ToLower(g.text))
		} else {
			parts = append(parts, g.text)
		}
	}
	return strings.Join(parts, ".")
}

// Matches reports whether the name could mean schema.table under the rule
// in the package comment (whether it would be ambiguous is Resolve's
// business).
func (s Spec) Matches(schema, table string) bool {
	for _, fold := range []bool{false, true} {
		if (len(s.segs) == 1 || !s.quoted) && s.join(0, len(s.segs), fold) == table {
			return true // bare name, any schema
		}
		for k := 1; k < len(s.segs); k++ {
			if s.join(0, k, fold) == schema && s.join(k, len(s.segs), fold) == table {
				return true
			}
		}
	}
	return false
}

// ErrNotFound and ErrAmbiguous are matched by Resolve's errors.
var (
	ErrNotFound  = errors.New("no such table")
	ErrAmbiguous = errors.New("names several tables")
)

// ResolveError is why a name did not resolve to one table.
type ResolveError struct {
	Spec       string
	Candidates []Name // sorted; empty when nothing matched
}

func (e *ResolveError) Error() string {
	if len(e.Candidates) == 0 {
		return fmt.Sprintf("table %s not found", e.Spec)
	}
	return fmt.Sprintf("table %s is ambiguous: %s", e.Spec, e.Detail())
}

// Detail is the reason alone: "no such table", or the candidates and the
// remedy.
func (e *ResolveError) Detail() string {
	if len(e.Candidates) == 0 {
		return ErrNotFound.Error()
	}
	names := make([]string, len(e.Candidates))
	for i, c := range e.Candidates {
		names[i] = c.String()
	}
	return fmt.Sprintf("it matches %s; give one of these exactly (schema.table, in double quotes where case or dots matter)",
		strings.Join(names, ", "))
}

func (e *ResolveError) Unwrap() error {
	if len(e.Candidates) == 0 {
		return ErrNotFound
	}
	return ErrAmbiguous
}

// Resolve returns the index of the one table in tables that spec names, or
// a parse error or a *ResolveError.
func Resolve(spec string, tables []Name) (int, error) {
	sp, err := Parse(spec)
	if err != nil {
		return -1, err
	}
	hit := -1
	var cands []Name
	for i, t := range tables {
		if sp.Matches(t.Schema, t.Table) {
			hit = i
			cands = append(cands, t)
		}
	}
	if len(cands) == 1 {
		return hit, nil
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].Schema != cands[j].Schema {
			return cands[i].Schema < cands[j].Schema
		}
		return cands[i].Table < cands[j].Table
	})
	return -1, &ResolveError{Spec: spec, Candidates: cands}
}

// ResolveAll resolves each spec against tables and returns the indexes hit
// (each once, in the order of tables), or an error naming every spec that
// did not resolve.
func ResolveAll(specs []string, tables []Name) ([]int, error) {
	seen := map[int]bool{}
	var problems errorList
	for _, s := range specs {
		i, err := Resolve(s, tables)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		seen[i] = true
	}
	if len(problems) > 0 {
		return nil, problems
	}
	out := make([]int, 0, len(seen))
	for i := range tables {
		if seen[i] {
			out = append(out, i)
		}
	}
	return out, nil
}

// errorList is several errors on one line; errors.Is and errors.As see each.
type errorList []error

func (l errorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

func (l errorList) Unwrap() []error { return l }
