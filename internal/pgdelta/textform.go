package pgdelta

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/pgutil"
)

// textForm is how the capture trigger turns one column's value into the
// text it logs: a direct call of the column type's output function, the
// function COPY's text format calls. Never a cast to text: a role that owns
// a column's type (an enum, a domain, a composite) may CREATE CAST from it to
// text with any function it likes, and a cast would run that function inside
// the trigger. Output functions cannot be chosen that way: enums, composites,
// ranges, arrays and domains all use the built-in ones, and only a superuser
// can create a base type with its own.
type textForm struct {
	Name string
	// Out is the schema-qualified output function of the column's type (of
	// its base type, for a domain).
	Out string
	// Base, for a domain column, is the qualified base type the value is
	// relabelled to first (domain to base is never a cast lookup: the
	// parser treats them as the same type).
	Base string
	// Arg, when the output function takes another, non-polymorphic type
	// than the value's (refcursor's is textout(text)), is that type: a
	// built-in binary-compatible coercion.
	Arg string
}

// expr is the SQL text of the column of record rec (NEW, OLD or a table
// alias) as its output function writes it; NULL stays NULL (output
// functions are strict).
func (f textForm) expr(rec string) string {
	v := rec + "." + pgutil.QuoteIdent(f.Name)
	if f.Base != "" {
		v = "(" + v + ")::" + f.Base
	}
	if f.Arg != "" {
		v = "(" + v + ")::" + f.Arg
	}
	return "pg_catalog.textin(" + f.Out + "(" + v + "))"
}

// textFormsSQL resolves, for every column of a relation, its type's output
// function: domains are followed down to their base type, every name is
// quoted and schema-qualified (the trigger's search_path is pg_catalog only).
const textFormsSQL = `
WITH RECURSIVE base AS (
	SELECT a.attname, a.attnum, a.atttypid AS orig, a.atttypid AS typ
	FROM pg_catalog.pg_attribute a
	WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
	SELECT b.attname, b.attnum, b.orig, t.typbasetype
	FROM base b JOIN pg_catalog.pg_type t ON t.oid = b.typ
	WHERE t.typtype = 'd'
)
SELECT b.attname::text,
	pg_catalog.quote_ident(pn.nspname) || '.' || pg_catalog.quote_ident(p.proname),
	CASE WHEN b.orig <> b.typ THEN pg_catalog.quote_ident(tn.nspname) || '.' || pg_catalog.quote_ident(t.typname) ELSE '' END,
	CASE WHEN at.typtype <> 'p' AND p.proargtypes[0] <> b.typ
		THEN pg_catalog.quote_ident(an.nspname) || '.' || pg_catalog.quote_ident(at.typname) ELSE '' END
FROM base b
JOIN pg_catalog.pg_type t ON t.oid = b.typ AND t.typtype <> 'd'
JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace
JOIN pg_catalog.pg_proc p ON p.oid = t.typoutput
JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
JOIN pg_catalog.pg_type at ON at.oid = p.proargtypes[0]
JOIN pg_catalog.pg_namespace an ON an.oid = at.typnamespace
ORDER BY b.attnum`

// textForms returns the text form of every column of relid, by name.
func textForms(ctx context.Context, conn *pgx.Conn, relid uint32) (map[string]textForm, error) {
	rows, err := conn.Query(ctx, textFormsSQL, relid)
	if err != nil {
		return nil, fmt.Errorf("resolve output functions: %w", err)
	}
	forms := map[string]textForm{}
	var f textForm
	_, err = pgx.ForEachRow(rows, []any{&f.Name, &f.Out, &f.Base, &f.Arg}, func() error {
		forms[f.Name] = f
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("resolve output functions: %w", err)
	}
	return forms, nil
}
